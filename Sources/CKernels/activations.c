// Element-wise activation functions of the forward pass.
#include "lathe_kernels.h"

#include <math.h>

#include "simd.h"

#ifdef LK_X86
/// silu(g) · u with sigmoid from t = e^−|g| (an argument ≤ 0, as the SIMD exp takes): 1 / (1 + t)
/// for g ≥ 0, t / (1 + t) below.
AVX2 static void avx2_silu_mul(float *gate, const float *up, int n) {
    const __m256 one = _mm256_set1_ps(1), sign = _mm256_set1_ps(-0.0f);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 g = _mm256_loadu_ps(gate + i);
        __m256 t = avx2_exp_nonpositive(_mm256_or_ps(g, sign));
        __m256 numerator = _mm256_blendv_ps(one, t, _mm256_cmp_ps(g, _mm256_setzero_ps(), _CMP_LT_OQ));
        __m256 sigmoid = _mm256_div_ps(numerator, _mm256_add_ps(one, t));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid), _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1 + expf(-gate[i])) * up[i];
}
#endif

void lk_silu_mul(float *gate, const float *up, int n) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_silu_mul(gate, up, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) gate[i] = gate[i] / (1 + expf(-gate[i])) * up[i];
}

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

#ifdef LK_X86
/// Eight running maxima with their first indices; a lane takes a value only when it is strictly
/// greater, so ties keep the earlier index, and the lanes are merged the same way.
AVX2 static int avx2_argmax(const float *x, int n) {
    __m256 best = _mm256_loadu_ps(x);
    __m256i index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), at = index;
    const __m256i step = _mm256_set1_epi32(8);
    int i = 8;
    for (; i + 8 <= n; i += 8) {
        at = _mm256_add_epi32(at, step);
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 greater = _mm256_cmp_ps(v, best, _CMP_GT_OQ);
        best = _mm256_blendv_ps(best, v, greater);
        index = _mm256_castps_si256(
            _mm256_blendv_ps(_mm256_castsi256_ps(index), _mm256_castsi256_ps(at), greater));
    }
    float values[8];
    int indices[8];
    _mm256_storeu_ps(values, best);
    _mm256_storeu_si256((__m256i *)indices, index);
    int result = indices[0];
    float top = values[0];
    for (int k = 1; k < 8; k++)
        if (values[k] > top || (values[k] == top && indices[k] < result)) {
            top = values[k];
            result = indices[k];
        }
    for (; i < n; i++)
        if (x[i] > top) {
            top = x[i];
            result = i;
        }
    return result;
}
#endif

int lk_argmax(const float *x, int n) {
    if (n <= 0) return -1;
#ifdef LK_X86
    // A NaN among the first eight could hold a lane; the scalar loop's answer is kept then.
    if (lk_uses_avx2() && n >= 8) {
        int nan = 0;
        for (int k = 0; k < 8; k++) nan |= x[k] != x[k];
        if (!nan) return avx2_argmax(x, n);
    }
#endif
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

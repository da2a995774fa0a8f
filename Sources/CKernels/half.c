// F32 → IEEE half conversion with the F16C instruction, for the writers' F16 output.
#include "lathe_kernels.h"

#include "simd.h"

#ifdef LK_X86
/// Eight at a time with VCVTPS2PH (round to nearest even, overflow to ±Inf). Every NaN is first
/// replaced by the float NaN sign | 0x7FC00000, which converts to sign | 0x7E00: Lathe's canonical
/// NaN, the bits the portable encoder gives.
AVX2 static int64_t f16c_encode(const float *in, uint8_t *out, int64_t n) {
    const __m256i sign = _mm256_set1_epi32((int)0x80000000u);
    const __m256i quiet = _mm256_set1_epi32(0x7FC00000);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(in + i);
        __m256 nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        __m256 canonical = _mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(_mm256_castps_si256(x), sign), quiet));
        x = _mm256_blendv_ps(x, canonical, nan);
        _mm_storeu_si128((__m128i *)(out + 2 * i), _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT));
    }
    return i;
}
#endif

int64_t lk_f32_to_f16(const float *in, void *out, int64_t n) {
#ifdef LK_X86
    if (lk_uses_avx2()) return f16c_encode(in, out, n);
#endif
    (void)in;
    (void)out;
    (void)n;
    return 0;
}

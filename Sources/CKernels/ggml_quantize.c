// ggml's Q8_0 and Q4_0 reference quantizers eight lanes at a time, operation for operation
// (formats.md §3.3), for blocks of finite values (others are left to the caller): the same float multiplications and additions in
// the same order (never fused), roundf's halves away from zero, C's truncating casts, and the scale
// rounded to F16 to nearest even. The portable path is LatheCore's Swift one.
#include "lathe_kernels.h"

#include <math.h>

#include "simd.h"

#pragma STDC FP_CONTRACT OFF

#ifdef LK_X86
/// The largest magnitude's bit pattern of 32 values, in every lane: with the sign cleared, bit
/// patterns order like the values, and an integer maximum keeps a NaN (above infinity's pattern)
/// where a float one would drop it.
AVX2 static inline __m256i abs_max_bits32(const __m256 v[4]) {
    const __m256i magnitude = _mm256_set1_epi32(0x7FFFFFFF);
    __m256i b[4];
    for (int k = 0; k < 4; k++) b[k] = _mm256_and_si256(_mm256_castps_si256(v[k]), magnitude);
    __m256i m = _mm256_max_epu32(_mm256_max_epu32(b[0], b[1]), _mm256_max_epu32(b[2], b[3]));
    m = _mm256_max_epu32(m, _mm256_permute2x128_si256(m, m, 1));
    m = _mm256_max_epu32(m, _mm256_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm256_max_epu32(m, _mm256_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
}

/// Infinity's bit pattern: a block whose largest magnitude reaches it is left to the portable path.
static const int32_t infinity_bits = 0x7F800000;

/// roundf: nearest with halves away from zero (round to even, then up where exactly half was left).
AVX2 static inline __m256 round_half_away(__m256 v, __m256 sign) {
    __m256 a = _mm256_andnot_ps(sign, v);
    __m256 n = _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 half = _mm256_cmp_ps(_mm256_sub_ps(a, n), _mm256_set1_ps(0.5f), _CMP_EQ_OQ);
    n = _mm256_add_ps(n, _mm256_and_ps(half, _mm256_set1_ps(1.0f)));
    return _mm256_or_ps(n, _mm256_and_ps(v, sign));
}

/// One block; 0 (nothing written) for a block holding an infinity or a NaN, or when 1/d overflows,
/// where the reference multiplies by infinity.
AVX2 static int q8_0_block(const float *x, uint8_t *y) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256i amax_bits = abs_max_bits32(v);
    if (_mm256_cvtsi256_si32(amax_bits) >= infinity_bits) return 0;
    float amax = _mm256_cvtss_f32(_mm256_castsi256_ps(amax_bits));
    float d = amax / 127;
    float id = d != 0 ? 1.0f / d : 0.0f;
    if (!isfinite(id)) return 0;
    uint16_t half = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    memcpy(y, &half, 2);
    __m256 scale = _mm256_set1_ps(id);
    __m256i q[4];
    for (int k = 0; k < 4; k++) q[k] = _mm256_cvtps_epi32(round_half_away(_mm256_mul_ps(v[k], scale), sign));
    // 32 → 16 → 8 bits interleaves the 128-bit lanes; the permutation puts them back in order.
    __m256i words = _mm256_packs_epi32(q[0], q[1]), words2 = _mm256_packs_epi32(q[2], q[3]);
    __m256i bytes = _mm256_packs_epi16(words, words2);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256((__m256i *)(y + 2), bytes);
    return 1;
}

/// One block; 0 (nothing written) where `q8_0_block` writes nothing.
AVX2 static int q4_0_block(const float *x, uint8_t *y) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 v[4];
    for (int k = 0; k < 4; k++) v[k] = _mm256_loadu_ps(x + 8 * k);
    __m256i amax_bits = abs_max_bits32(v);
    if (_mm256_cvtsi256_si32(amax_bits) >= infinity_bits) return 0;
    // The value with the largest magnitude, keeping its sign: the first one that reaches it.
    __m256 amax = _mm256_castsi256_ps(amax_bits);
    float max = 0;
    if (_mm256_cvtss_f32(amax) != 0) {
        for (int k = 0; k < 4; k++) {
            int hits = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, v[k]), amax, _CMP_EQ_OQ));
            if (hits) {
                max = x[8 * k + __builtin_ctz((unsigned)hits)];
                break;
            }
        }
    }
    float d = max / -8;
    float id = d != 0 ? 1.0f / d : 0.0f;
    if (!isfinite(id)) return 0;
    uint16_t half = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    memcpy(y, &half, 2);
    __m256 scale = _mm256_set1_ps(id), offset = _mm256_set1_ps(8.5f);
    __m256i fifteen = _mm256_set1_epi32(15);
    __m256i q[4];
    for (int k = 0; k < 4; k++)
        q[k] = _mm256_min_epi32(_mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(v[k], scale), offset)), fifteen);
    // Byte j holds value j in its low nibble and value j + 16 in its high one.
    __m256i low = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
    __m256i high = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
    __m256i words = _mm256_packus_epi32(low, high);
    __m128i bytes = _mm_packus_epi16(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
    // packus interleaved the lanes: bytes hold values 0-3, 8-11, 4-7, 12-15 in groups of four.
    bytes = _mm_shuffle_epi32(bytes, _MM_SHUFFLE(3, 1, 2, 0));
    _mm_storeu_si128((__m128i *)(y + 2), bytes);
    return 1;
}
#endif

int64_t lk_quantize_ggml(int type, const float *x, int64_t blocks, void *out) {
#ifdef LK_X86
    if (!lk_uses_avx2() || (type != 8 && type != 2)) return -1;
    uint8_t *y = out;
    int64_t b = 0;
    if (type == 8)
        while (b < blocks && q8_0_block(x + 32 * b, y + 34 * b)) b++;
    else
        while (b < blocks && q4_0_block(x + 32 * b, y + 18 * b)) b++;
    return b;
#endif
    (void)type;
    (void)x;
    (void)blocks;
    (void)out;
    return -1;
}

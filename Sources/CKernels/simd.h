// What the kernel files share: the x86 SIMD target attribute and the small inline helpers.
#ifndef LATHE_KERNELS_SIMD_H
#define LATHE_KERNELS_SIMD_H

#include <stdint.h>
#include <string.h>

/// `detect()` run once and kept in `*state` (−1 until then): every thread computes the same answer,
/// and relaxed atomics keep the race defined.
static inline int lk_detect_once(int *state, int (*detect)(void)) {
    int value = __atomic_load_n(state, __ATOMIC_RELAXED);
    if (value < 0) {
        value = detect();
        __atomic_store_n(state, value, __ATOMIC_RELAXED);
    }
    return value;
}

#if defined(__x86_64__)
#include <immintrin.h>
#define LK_X86 1
// The SIMD bodies may use AVX2, FMA and F16C: `lk_uses_avx2` requires all three.
#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum_f32(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// e^x for x ≤ 0 (softmax arguments): 2^n · p(r) with n = round(x / ln 2), r = x − n ln 2 in two
/// steps (Cody–Waite), p the degree-6 Taylor polynomial. Within 3 ulp of expf on (−87.3, 0]
/// (checked against every seventh float there); 0 below, where e^x < 1.2e-38 is nothing beside
/// softmax's largest term, 1.
AVX2 static inline __m256 avx2_exp_nonpositive(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 720);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 result = _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
    return _mm256_and_ps(result, _mm256_cmp_ps(x, _mm256_set1_ps(-87.3f), _CMP_GT_OQ));
}

/// Sequential nibbles (element 2k low) → scale · (code − zero), 32, 16 or 8 at a time, then one by one.
AVX2 static inline void avx2_dequant_u4_seq(const uint8_t *codes, float scale, float zero, float *out, int n) {
    const __m128i mask = _mm_set1_epi8(0x0F);
    __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero);
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m128i v = _mm_loadu_si128((const __m128i *)(codes + i / 2));
        __m128i lo = _mm_and_si128(v, mask), hi = _mm_and_si128(_mm_srli_epi16(v, 4), mask);
        __m128i first = _mm_unpacklo_epi8(lo, hi), second = _mm_unpackhi_epi8(lo, hi);
        __m128i halves[4] = {first, _mm_srli_si128(first, 8), second, _mm_srli_si128(second, 8)};
        for (int k = 0; k < 4; k++) {
            __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(halves[k]));
            _mm256_storeu_ps(out + i + 8 * k, _mm256_mul_ps(s, _mm256_sub_ps(c, z)));
        }
    }
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadl_epi64((const __m128i *)(codes + i / 2));
        __m128i codes16 = _mm_unpacklo_epi8(_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16(v, 4), mask));
        __m128i halves[2] = {codes16, _mm_srli_si128(codes16, 8)};
        for (int k = 0; k < 2; k++) {
            __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(halves[k]));
            _mm256_storeu_ps(out + i + 8 * k, _mm256_mul_ps(s, _mm256_sub_ps(c, z)));
        }
    }
    for (; i + 8 <= n; i += 8) {
        int32_t word;
        memcpy(&word, codes + i / 2, sizeof word);
        __m128i v = _mm_cvtsi32_si128(word);
        __m128i codes8 = _mm_unpacklo_epi8(_mm_and_si128(v, mask), _mm_and_si128(_mm_srli_epi16(v, 4), mask));
        __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(codes8));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_sub_ps(c, z)));
    }
    for (; i < n; i++) {
        int code = (i & 1) ? (codes[i >> 1] >> 4) : (codes[i >> 1] & 0x0F);
        out[i] = scale * ((float)code - zero);
    }
}

/// Codes one per byte → scale · (code − zero), 8 at a time, then one by one.
AVX2 static inline void avx2_dequant_u8_seq(const uint8_t *codes, float scale, float zero, float *out, int n) {
    __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 c = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(codes + i))));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(s, _mm256_sub_ps(c, z)));
    }
    for (; i < n; i++) out[i] = scale * ((float)codes[i] - zero);
}

#endif

#endif

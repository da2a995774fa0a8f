// The packed integer GEMM of a prompt: many tokens' activation codes against the weight codes,
// each (row, token) the same integer dot products and the same float steps as the GEMV of one
// token (`avx2_gemv_u8_pair` in kernels.c), so a prompt's products equal its tokens' one by one.
#include "lathe_kernels.h"

#include "packed_rows.h"
#include "simd.h"

/// Tokens whose activation codes one pass over a row multiplies: the row's unpacked nibbles are
/// shared by them, their accumulators are independent chains, and their per-segment scalars fill
/// the eight lanes of one vector (`hsum8_minus` assumes eight).
#define GEMM_TOKENS 8

/// Token by token through the GEMV: token t's outputs are row-contiguous at y + t · ldy.
static void generic_gemm_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                            lk_rows layout, const int32_t *code_sums, const uint8_t *codes, int code_stride,
                            int tokens, const float *scales, const float *zeros, int part_stride, float *y,
                            int ldy) {
    for (int t = 0; t < tokens; t++)
        lk_gemv_packed_u8(rows, count, segments, segment_count, layout, code_sums,
                          codes + (size_t)t * (size_t)code_stride, NULL, scales + t * part_stride,
                          zeros + t * part_stride, y + (size_t)t * (size_t)ldy);
}

#ifdef LK_X86
/// y − c for eight token totals at once: each lane hsum_f32(total[t]) (the same additions, in the
/// same pairs) minus c[t].
AVX2 static inline __m256 hsum8_minus(const __m256 total[8], __m256 c) {
    __m256 u[4];
    for (int p = 0; p < 4; p++)
        u[p] = _mm256_add_ps(_mm256_permute2f128_ps(total[2 * p], total[2 * p + 1], 0x20),
                             _mm256_permute2f128_ps(total[2 * p], total[2 * p + 1], 0x31));
    // Lanes 0..3 of each 128-bit half: (l0 + l4) … (l3 + l7) of one token; then + movehl.
    __m256 v0 = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
    __m256 v1 = _mm256_add_ps(_mm256_shuffle_ps(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm256_shuffle_ps(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
    // Then + movehdup: tokens 0, 2, 4, 6 in the low half, 1, 3, 5, 7 in the high one.
    __m256 r = _mm256_add_ps(_mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(3, 1, 3, 1)));
    r = _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    return _mm256_sub_ps(r, c);
}

/// One row against GEMM_TOKENS tokens (`a`: their expanded codes; `s`, `z`: their part scales and
/// zero points, part-major, GEMM_TOKENS per part); writes the first `live` to y, `ldy` apart. The
/// 4-bit dot products go through DOT_Q4 (VNNI or maddubs: the same exact integer sums per lane),
/// the 8-bit ones widen to 16 bits as the GEMV does, and each segment's sums are scaled and
/// corrected as the GEMV does it, the tokens' scalars side by side in lanes.
#define GEMM_ROW_BODY(DOT_Q4)                                                                                     \
    const uint8_t *codes = row + header_bytes(layout);                                                          \
    const __m256i mask = _mm256_set1_epi8(0x0F), eight = _mm256_set1_epi8(8);                                   \
    __m256 total[GEMM_TOKENS];                                                                                  \
    __m256 correction = _mm256_setzero_ps();                                                                    \
    for (int t = 0; t < GEMM_TOKENS; t++) total[t] = _mm256_setzero_ps();                                       \
    for (int seg = 0; seg < segment_count; seg++) {                                                             \
        const lk_segment *g = &segments[seg];                                                                   \
        const uint8_t *w = codes + g->offset;                                                                   \
        __m256i acc[GEMM_TOKENS];                                                                               \
        for (int t = 0; t < GEMM_TOKENS; t++) acc[t] = _mm256_setzero_si256();                                  \
        if (g->bits == 4) {                                                                                     \
            for (int b = 0; b * 64 < g->count; b++) {                                                           \
                __m256i v = _mm256_loadu_si256((const __m256i *)(w + 32 * b));                                   \
                __m256i lo = _mm256_sub_epi8(_mm256_and_si256(v, mask), eight);                                 \
                __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask), eight);            \
                for (int t = 0; t < GEMM_TOKENS; t++) {                                                         \
                    const uint8_t *x = a[t] + g->expanded + 64 * b;                                              \
                    acc[t] = DOT_Q4(acc[t], _mm256_loadu_si256((const __m256i *)x), lo,                         \
                                    _mm256_loadu_si256((const __m256i *)(x + 32)), hi);                         \
                }                                                                                               \
            }                                                                                                   \
        } else {                                                                                                \
            for (int i = 0; i < g->count; i += 16) {                                                            \
                __m256i wide = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + i)));                 \
                for (int t = 0; t < GEMM_TOKENS; t++) {                                                         \
                    __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a[t] + g->expanded + i))); \
                    acc[t] = _mm256_add_epi32(acc[t], _mm256_madd_epi16(wide, x));                              \
                }                                                                                               \
            }                                                                                                   \
        }                                                                                                       \
        /* factor = row scale · token scale; correction += factor · (z · Σ q), lane t for token t. */           \
        __m256 factor = _mm256_mul_ps(_mm256_set1_ps(avx2_scale_of(row, layout, g->slot)),                      \
                                      _mm256_loadu_ps(s + GEMM_TOKENS * g->part));                              \
        __m256 term = _mm256_mul_ps(_mm256_loadu_ps(z + GEMM_TOKENS * g->part), _mm256_set1_ps((float)sums[seg])); \
        correction = _mm256_fmadd_ps(factor, term, correction);                                                  \
        float factors[GEMM_TOKENS];                                                                             \
        _mm256_storeu_ps(factors, factor);                                                                      \
        for (int t = 0; t < GEMM_TOKENS; t++)                                                                   \
            total[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc[t]), _mm256_broadcast_ss(factors + t), total[t]); \
    }                                                                                                           \
    float out[GEMM_TOKENS];                                                                                     \
    _mm256_storeu_ps(out, hsum8_minus(total, correction));                                                      \
    for (int t = 0; t < live; t++) y[(size_t)t * (size_t)ldy] = out[t];

/// Σ (nibble − 8) · a over a 64-column block as `block_q4_loaded` sums it.
#define DOT_Q4_MADDUBS(acc, a_low, lo, a_high, hi)                                                          \
    _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(a_low, lo),               \
                                                             _mm256_maddubs_epi16(a_high, hi)),             \
                                            _mm256_set1_epi16(1)))
/// The same sums with VNNI: each lane adds the same four products of each half.
#define DOT_Q4_VNNI(acc, a_low, lo, a_high, hi) \
    _mm256_dpbusd_avx_epi32(_mm256_dpbusd_avx_epi32(acc, a_low, lo), a_high, hi)

#define GEMM_ROW_ARGUMENTS                                                                                   \
    const uint8_t *row, const lk_segment *segments, int segment_count, lk_rows layout, const int32_t *sums,  \
        const uint8_t *const a[GEMM_TOKENS], const float *s, const float *z, int live, float *y, int ldy

AVX2 static void avx2_gemm_row(GEMM_ROW_ARGUMENTS) { GEMM_ROW_BODY(DOT_Q4_MADDUBS) }

__attribute__((target("avx2,fma,f16c,avxvnni"))) static void vnni_gemm_row(GEMM_ROW_ARGUMENTS) {
    GEMM_ROW_BODY(DOT_Q4_VNNI)
}

typedef void (*gemm_row_function)(GEMM_ROW_ARGUMENTS);

/// Each block of GEMM_TOKENS tokens against every row: the block's codes stay in L1 while the rows
/// stream from L2. A last block of fewer tokens repeats its last token in the spare places and
/// keeps only the live ones.
static void x86_gemm_u8(gemm_row_function row_product, const uint8_t *const *rows, int count,
                        const lk_segment *segments, int segment_count, lk_rows layout, const int32_t *code_sums,
                        const uint8_t *codes, int code_stride, int tokens, const float *scales, const float *zeros,
                        int part_stride, float *y, int ldy) {
    // The token block's scales and zero points, part-major: lanes of one part are its tokens.
    float s[GEMM_TOKENS * part_stride], z[GEMM_TOKENS * part_stride];
    for (int t0 = 0; t0 < tokens; t0 += GEMM_TOKENS) {
        int live = tokens - t0 < GEMM_TOKENS ? tokens - t0 : GEMM_TOKENS;
        const uint8_t *a[GEMM_TOKENS];
        for (int t = 0; t < GEMM_TOKENS; t++) {
            int token = t0 + (t < live ? t : live - 1);
            a[t] = codes + (size_t)token * (size_t)code_stride;
            for (int p = 0; p < part_stride; p++) {
                s[GEMM_TOKENS * p + t] = scales[token * part_stride + p];
                z[GEMM_TOKENS * p + t] = zeros[token * part_stride + p];
            }
        }
        for (int r = 0; r < count; r++)
            row_product(rows[r], segments, segment_count, layout, code_sums + r * segment_count, a, s, z, live,
                        y + (size_t)t0 * (size_t)ldy + (size_t)r, ldy);
    }
}

static int detect_vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avxvnni");
}

static int vnni_state = -1;
#endif

static _Thread_local int vnni_avoided = 0;

void lk_avoid_vnni_on_this_thread(int avoid) { vnni_avoided = avoid; }

int lk_uses_vnni(void) {
#ifdef LK_X86
    if (vnni_avoided || !lk_uses_avx2()) return 0;
    return lk_detect_once(&vnni_state, detect_vnni);
#else
    return 0;
#endif
}

int lk_gemm_packed_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                      lk_rows layout, const int32_t *code_sums, const uint8_t *codes, int code_stride, int tokens,
                      const float *scales, const float *zeros, int part_stride, float *y, int ldy) {
    if (layout.zero_points) return 0;
    if (count <= 0 || tokens <= 0) return 1;
#ifdef LK_X86
    if (lk_uses_avx2()) {
        x86_gemm_u8(lk_uses_vnni() ? vnni_gemm_row : avx2_gemm_row, rows, count, segments, segment_count, layout,
                    code_sums, codes, code_stride, tokens, scales, zeros, part_stride, y, ldy);
        return 1;
    }
#endif
    generic_gemm_u8(rows, count, segments, segment_count, layout, code_sums, codes, code_stride, tokens, scales,
                    zeros, part_stride, y, ldy);
    return 1;
}

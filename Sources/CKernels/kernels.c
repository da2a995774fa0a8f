#include "lathe_kernels.h"

#include <math.h>
#include <string.h>

#include "packed_rows.h"
#include "simd.h"

int lk_expanded_count(const lk_segment *g) {
    return g->bits == 4 ? (g->count + 63) / 64 * 64 : (g->count + 15) / 16 * 16;
}

#define EXPAND(type)                                                                  \
    for (int s = 0; s < segment_count; s++) {                                         \
        const lk_segment *g = &segments[s];                                           \
        type *target = out + g->expanded;                                             \
        const type *source = x + g->start;                                            \
        memset(target, 0, sizeof(type) * (size_t)lk_expanded_count(g));               \
        if (g->bits != 4) {                                                           \
            memcpy(target, source, sizeof(type) * (size_t)g->count);                  \
            continue;                                                                 \
        }                                                                             \
        for (int b = 0; b * 64 < g->count; b++) {                                     \
            int m = g->count - 64 * b < 64 ? g->count - 64 * b : 64;                  \
            int h = (m + 1) / 2;                                                      \
            memcpy(target + 64 * b, source + 64 * b, sizeof(type) * (size_t)h);       \
            memcpy(target + 64 * b + 32, source + 64 * b + h, sizeof(type) * (size_t)(m - h)); \
        }                                                                             \
    }

void lk_expand_u8(const uint8_t *x, const lk_segment *segments, int segment_count, uint8_t *out) { EXPAND(uint8_t) }
void lk_expand_f32(const float *x, const lk_segment *segments, int segment_count, float *out) { EXPAND(float) }

void lk_slot_sums_f32(const float *x, const lk_segment *segments, int segment_count, int slots, float *sums) {
    memset(sums, 0, sizeof(float) * (size_t)slots);
    for (int s = 0; s < segment_count; s++) {
        const float *a = x + segments[s].expanded;
        float sum = 0;
        for (int i = 0; i < lk_expanded_count(&segments[s]); i++) sum += a[i];
        sums[segments[s].slot] += sum;
    }
}

/// Σ over slots of scale · z · Σ x: what weight zero points take from a row's float product.
static float zero_correction(const uint8_t *row, lk_rows layout, const float *x_sums) {
    float correction = 0;
    if (layout.zero_points)
        for (int k = 0; k < layout.slots; k++)
            correction += scale_of(row, layout, k) * zero_of(row, layout, k) * x_sums[k];
    return correction;
}

void lk_segment_sums_u8(const uint8_t *x, const lk_segment *segments, int segment_count, int32_t *sums) {
    for (int s = 0; s < segment_count; s++) {
        const uint8_t *a = x + segments[s].expanded;
        int32_t sum = 0;
        for (int i = 0; i < lk_expanded_count(&segments[s]); i++) sum += a[i];
        sums[s] = sum;
    }
}

// MARK: - Portable bodies (the same arithmetic over the same expanded layout)

static void generic_gemv_f32(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                             lk_rows layout, const float *x, const float *x_sums, float *y) {
    for (int r = 0; r < count; r++) {
        const uint8_t *codes = rows[r] + header_bytes(layout);
        float sum = 0;
        for (int s = 0; s < segment_count; s++) {
            const lk_segment *g = &segments[s];
            const uint8_t *w = codes + g->offset;
            const float *a = x + g->expanded;
            float dot = 0;
            if (g->bits == 4) {
                for (int b = 0; b * 64 < g->count; b++)
                    for (int j = 0; j < 32; j++) {
                        uint8_t byte = w[32 * b + j];
                        dot += (float)((byte & 0x0F) - 8) * a[64 * b + j] + (float)((byte >> 4) - 8) * a[64 * b + 32 + j];
                    }
            } else {
                for (int i = 0; i < lk_expanded_count(g); i++) dot += (float)(int8_t)w[i] * a[i];
            }
            sum += dot * scale_of(rows[r], layout, g->slot);
        }
        y[r] = sum - zero_correction(rows[r], layout, x_sums);
    }
}

static void generic_gemv_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                            lk_rows layout, const int32_t *code_sums, const uint8_t *x, const int32_t *x_sums,
                            const float *scales, const float *zeros, float *y) {
    for (int r = 0; r < count; r++) {
        const uint8_t *codes = rows[r] + header_bytes(layout);
        float sum = 0;
        for (int s = 0; s < segment_count; s++) {
            const lk_segment *g = &segments[s];
            const uint8_t *w = codes + g->offset;
            const uint8_t *a = x + g->expanded;
            int32_t dot = 0;
            if (g->bits == 4) {
                for (int b = 0; b * 64 < g->count; b++)
                    for (int j = 0; j < 32; j++) {
                        uint8_t byte = w[32 * b + j];
                        dot += ((byte & 0x0F) - 8) * a[64 * b + j] + ((byte >> 4) - 8) * a[64 * b + 32 + j];
                    }
            } else {
                for (int i = 0; i < lk_expanded_count(g); i++) dot += (int8_t)w[i] * a[i];
            }
            float corrected = (float)dot - zeros[g->part] * (float)code_sums[r * segment_count + s];
            float zero = zero_of(rows[r], layout, g->slot);
            if (zero != 0) corrected -= zero * ((float)x_sums[s] - zeros[g->part] * (float)g->count);
            sum += scale_of(rows[r], layout, g->slot) * scales[g->part] * corrected;
        }
        y[r] = sum;
    }
}

// MARK: - AVX2 bodies

#ifdef LK_X86
/// 32 bytes of a block → 64 floats q: low nibbles are columns 0..31, high nibbles 32..63.
AVX2 static inline void unpack64(const uint8_t *codes, __m256 out[8]) {
    __m128i w0 = _mm_loadu_si128((const __m128i *)codes);
    __m128i w1 = _mm_loadu_si128((const __m128i *)(codes + 16));
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i eight = _mm_set1_epi8(8);
    __m128i parts[4] = {
        _mm_sub_epi8(_mm_and_si128(w0, mask), eight),
        _mm_sub_epi8(_mm_and_si128(w1, mask), eight),
        _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(w0, 4), mask), eight),
        _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(w1, 4), mask), eight),
    };
    for (int p = 0; p < 4; p++) {
        out[2 * p] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[p]));
        out[2 * p + 1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(parts[p], 8)));
    }
}

/// Rows ahead that the packed GEMVs ask the memory system for: a decoded token's matrices are
/// small (0.2–1 MB), and each starts cold; without the hint the hardware prefetcher's ramp-up
/// cost about a fifth of the integer GEMV's time (16 rows measured best among 4, 8, 16, 24, 32).
#define PREFETCH_ROWS 16

/// Bytes of one packed row: the scales and zero points, then the codes up to the end of the last segment.
static int row_bytes(const lk_segment *segments, int segment_count, lk_rows layout) {
    if (segment_count <= 0) return header_bytes(layout);
    const lk_segment *last = &segments[segment_count - 1];
    int codes = last->bits == 4 ? 32 * (last->count / 64) + (last->count % 64 + 1) / 2 : last->count;
    return header_bytes(layout) + last->offset + codes;
}

/// Prefetches row r + PREFETCH_ROWS (`bytes` long), when there is one.
AVX2 static inline void prefetch_row(const uint8_t *const *rows, int r, int count, int bytes) {
    if (r + PREFETCH_ROWS >= count) return;
    const char *next = (const char *)rows[r + PREFETCH_ROWS];
    for (int line = 0; line < bytes; line += 64) _mm_prefetch(next + line, _MM_HINT_T0);
}

/// `avx2_gemv_u8` for two rows at once, without weight zero points: each segment's activation
/// codes are loaded once for both, which matters for rows of many short segments (o_proj's 18 per
/// row, one per head and precision). The same operations per row, so the same results.
AVX2 static void avx2_gemv_u8_pair(const uint8_t *row0, const uint8_t *row1, const lk_segment *segments,
                                   int segment_count, lk_rows layout, const int32_t *sums0, const int32_t *sums1,
                                   const uint8_t *x, const float *scales, const float *zeros, float *y) {
    const uint8_t *codes0 = row0 + header_bytes(layout), *codes1 = row1 + header_bytes(layout);
    __m256 total0 = _mm256_setzero_ps(), total1 = _mm256_setzero_ps();
    float correction0 = 0, correction1 = 0;
    for (int s = 0; s < segment_count; s++) {
        const lk_segment *g = &segments[s];
        const uint8_t *w0 = codes0 + g->offset, *w1 = codes1 + g->offset;
        const uint8_t *a = x + g->expanded;
        __m256i acc0 = _mm256_setzero_si256(), acc1 = _mm256_setzero_si256();
        if (g->bits == 4) {
            for (int b = 0; b * 64 < g->count; b++) {
                __m256i low = _mm256_loadu_si256((const __m256i *)(a + 64 * b));
                __m256i high = _mm256_loadu_si256((const __m256i *)(a + 64 * b + 32));
                acc0 = block_q4_loaded(w0 + 32 * b, low, high, acc0);
                acc1 = block_q4_loaded(w1 + 32 * b, low, high, acc1);
            }
        } else {
            for (int i = 0; i < g->count; i += 16) {
                __m256i av = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
                acc0 = block_q8(w0 + i, av, acc0);
                acc1 = block_q8(w1 + i, av, acc1);
            }
        }
        float factor0 = avx2_scale_of(row0, layout, g->slot) * scales[g->part];
        float factor1 = avx2_scale_of(row1, layout, g->slot) * scales[g->part];
        total0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc0), _mm256_set1_ps(factor0), total0);
        total1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc1), _mm256_set1_ps(factor1), total1);
        // Fused explicitly: the prompt GEMM fuses the same step in its lanes, bit for bit.
        float term0 = zeros[g->part] * (float)sums0[s], term1 = zeros[g->part] * (float)sums1[s];
        correction0 = fmaf(factor0, term0, correction0);
        correction1 = fmaf(factor1, term1, correction1);
    }
    y[0] = hsum_f32(total0) - correction0;
    y[1] = hsum_f32(total1) - correction1;
}

/// Each segment's exact integer dot product stays in its eight lanes, which are converted and
/// scaled into one float accumulator: no horizontal sum per segment (a head-wise row, such as
/// o_proj's, has 18 short segments), one per row.
AVX2 static void avx2_gemv_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                              lk_rows layout, const int32_t *code_sums, const uint8_t *x, const int32_t *x_sums,
                              const float *scales, const float *zeros, float *y) {
    int bytes = row_bytes(segments, segment_count, layout);
    int r = 0;
    if (!layout.zero_points)
        for (; r + 2 <= count; r += 2) {
            prefetch_row(rows, r, count, bytes);
            prefetch_row(rows, r + 1, count, bytes);
            avx2_gemv_u8_pair(rows[r], rows[r + 1], segments, segment_count, layout, code_sums + r * segment_count,
                              code_sums + (r + 1) * segment_count, x, scales, zeros, y + r);
        }
    for (; r < count; r++) {
        const uint8_t *codes = rows[r] + header_bytes(layout);
        prefetch_row(rows, r, count, bytes);
        __m256 total = _mm256_setzero_ps();
        float correction = 0;
        for (int s = 0; s < segment_count; s++) {
            const lk_segment *g = &segments[s];
            const uint8_t *w = codes + g->offset;
            const uint8_t *a = x + g->expanded;
            __m256i acc = _mm256_setzero_si256();
            if (g->bits == 4) {
                for (int b = 0; b * 64 < g->count; b++) acc = block_q4(w + 32 * b, a + 64 * b, acc);
            } else {
                for (int i = 0; i < g->count; i += 16)
                    acc = block_q8(w + i, _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i))), acc);
            }
            float factor = avx2_scale_of(rows[r], layout, g->slot) * scales[g->part];
            total = _mm256_fmadd_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(factor), total);
            float term = zeros[g->part] * (float)code_sums[r * segment_count + s];
            float zero = zero_of(rows[r], layout, g->slot);
            if (zero != 0) term += zero * ((float)x_sums[s] - zeros[g->part] * (float)g->count);
            correction = fmaf(factor, term, correction);
        }
        y[r] = hsum_f32(total) - correction;
    }
}

/// 16 bytes of a short block (m ≤ 32 columns, so h ≤ 16) → q of its columns 0..15 (low nibbles,
/// against activations 0..15) and 32..47 (high nibbles, against 32..47): half of `unpack64`'s work,
/// which matters for groups of 32 columns, where every segment is one such block.
AVX2 static inline void unpack32(const uint8_t *codes, __m256 out[4]) {
    __m128i w = _mm_loadu_si128((const __m128i *)codes);
    const __m128i mask = _mm_set1_epi8(0x0F);
    const __m128i eight = _mm_set1_epi8(8);
    __m128i lo = _mm_sub_epi8(_mm_and_si128(w, mask), eight);
    __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(w, 4), mask), eight);
    out[0] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo));
    out[1] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8)));
    out[2] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi));
    out[3] = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8)));
}

/// `zero_correction` eight slots at a time (scales, zero points and sums are contiguous per slot).
AVX2 static float avx2_zero_correction(const uint8_t *row, lk_rows layout, const float *x_sums) {
    if (!layout.zero_points) return 0;
    const int8_t *zeros = (const int8_t *)(row + scale_bytes(layout) * layout.slots);
    __m256 acc = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= layout.slots; k += 8) {
        __m256 z = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(zeros + k))));
        __m256 scales = layout.half_scales ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * k)))
                                           : _mm256_loadu_ps((const float *)(row + 4 * k));
        __m256 scaled = _mm256_mul_ps(scales, z);
        acc = _mm256_fmadd_ps(scaled, _mm256_loadu_ps(x_sums + k), acc);
    }
    float correction = hsum_f32(acc);
    for (; k < layout.slots; k++)
        correction += avx2_scale_of(row, layout, k) * zero_of(row, layout, k) * x_sums[k];
    return correction;
}

/// As the integer GEMV: each segment's dot product stays in its lanes and is scaled into one
/// accumulator, with one horizontal sum per row; weight zero points enter as a scalar correction.
AVX2 static void avx2_gemv_f32(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                               lk_rows layout, const float *x, const float *x_sums, float *y) {
    int bytes = row_bytes(segments, segment_count, layout);
    for (int r = 0; r < count; r++) {
        const uint8_t *codes = rows[r] + header_bytes(layout);
        prefetch_row(rows, r, count, bytes);
        __m256 total = _mm256_setzero_ps();
        for (int s = 0; s < segment_count; s++) {
            const lk_segment *g = &segments[s];
            const uint8_t *w = codes + g->offset;
            const float *a = x + g->expanded;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            if (g->bits == 4) {
                for (int b = 0; b * 64 < g->count; b++) {
                    if (g->count - b * 64 <= 32) {
                        __m256 q[4];
                        unpack32(w + 32 * b, q);
                        const float *block = a + 64 * b;
                        acc0 = _mm256_fmadd_ps(q[0], _mm256_loadu_ps(block), acc0);
                        acc1 = _mm256_fmadd_ps(q[1], _mm256_loadu_ps(block + 8), acc1);
                        acc0 = _mm256_fmadd_ps(q[2], _mm256_loadu_ps(block + 32), acc0);
                        acc1 = _mm256_fmadd_ps(q[3], _mm256_loadu_ps(block + 40), acc1);
                        continue;
                    }
                    __m256 q[8];
                    unpack64(w + 32 * b, q);
                    for (int k = 0; k < 8; k += 2) {
                        acc0 = _mm256_fmadd_ps(q[k], _mm256_loadu_ps(a + 64 * b + 8 * k), acc0);
                        acc1 = _mm256_fmadd_ps(q[k + 1], _mm256_loadu_ps(a + 64 * b + 8 * k + 8), acc1);
                    }
                }
            } else {
                for (int i = 0; i < g->count; i += 16) {
                    __m128i v = _mm_loadu_si128((const __m128i *)(w + i));
                    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)), _mm256_loadu_ps(a + i), acc0);
                    acc1 = _mm256_fmadd_ps(
                        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(v, 8))), _mm256_loadu_ps(a + i + 8), acc1);
                }
            }
            __m256 scale = _mm256_set1_ps(avx2_scale_of(rows[r], layout, g->slot));
            total = _mm256_fmadd_ps(_mm256_add_ps(acc0, acc1), scale, total);
        }
        y[r] = hsum_f32(total) - avx2_zero_correction(rows[r], layout, x_sums);
    }
}

AVX2 static void avx2_dequant_q4(const uint8_t *codes, float scale, float zero, float *out, int n) {
    __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero);
    int full = n / 64;
    for (int b = 0; b < full; b++) {
        __m256 w[8];
        unpack64(codes + 32 * b, w);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(out + 64 * b + 8 * k, _mm256_mul_ps(_mm256_sub_ps(w[k], z), s));
    }
    int m = n - full * 64;
    if (m == 32) {
        // A group of 32 columns: bytes 0..15 hold columns 0..15 (low) and 16..31 (high).
        __m256 w[4];
        unpack32(codes + 32 * full, w);
        for (int k = 0; k < 4; k++) _mm256_storeu_ps(out + 64 * full + 8 * k, _mm256_mul_ps(_mm256_sub_ps(w[k], z), s));
    } else if (m > 0) {
        // A short block: unpack all 32 bytes (the caller keeps them readable), keep its m columns.
        int h = (m + 1) / 2;
        __m256 w[8];
        float block[64];
        unpack64(codes + 32 * full, w);
        for (int k = 0; k < 8; k++) _mm256_storeu_ps(block + 8 * k, _mm256_mul_ps(_mm256_sub_ps(w[k], z), s));
        memcpy(out + 64 * full, block, sizeof(float) * (size_t)h);
        memcpy(out + 64 * full + h, block + 32, sizeof(float) * (size_t)(m - h));
    }
}

AVX2 static int32_t avx2_sum_q4(const uint8_t *codes, int n) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    __m256i acc = _mm256_setzero_si256();
    int full = n / 64;
    for (int b = 0; b < full; b++) {
        __m256i w = _mm256_loadu_si256((const __m256i *)(codes + 32 * b));
        __m256i nibbles = _mm256_add_epi8(_mm256_and_si256(w, mask), _mm256_and_si256(_mm256_srli_epi16(w, 4), mask));
        acc = _mm256_add_epi64(acc, _mm256_sad_epu8(nibbles, _mm256_setzero_si256()));
    }
    int64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, acc);
    int32_t sum = (int32_t)(lanes[0] + lanes[1] + lanes[2] + lanes[3]) - 8 * 64 * full;
    for (int i = full * 64; i < n; i++) sum += nibble_at(codes, n, i);
    return sum;
}

/// The F16 GEMV (the output head, 57 MB per decoded token for SmolLM2) asks for rows about 8 KB
/// ahead: at 2 threads the head took 6 % less time than with the hardware prefetcher alone
/// (median of five interleaved runs); non-temporal hints did no better.
#define F16_PREFETCH_BYTES 8192

AVX2 static void avx2_gemv_f16(const uint16_t *w, int rows, int columns, const float *x, float *y) {
    int ahead = F16_PREFETCH_BYTES / (2 * columns) + 1;
    for (int r = 0; r < rows; r++) {
        const uint16_t *row = w + (size_t)r * (size_t)columns;
        if (r + ahead < rows) {
            const char *next = (const char *)(row + (size_t)ahead * (size_t)columns);
            for (int line = 0; line < 2 * columns; line += 64) _mm_prefetch(next + line, _MM_HINT_T0);
        }
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= columns; i += 16) {
            acc0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i))), _mm256_loadu_ps(x + i), acc0);
            acc1 = _mm256_fmadd_ps(
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + i + 8))), _mm256_loadu_ps(x + i + 8), acc1);
        }
        float sum = hsum_f32(_mm256_add_ps(acc0, acc1));
        for (; i < columns; i++) sum += _cvtsh_ss(row[i]) * x[i];
        y[r] = sum;
    }
}

AVX2 static void avx2_f16_to_f32(const uint16_t *in, float *out, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(in + i))));
    for (; i < n; i++) out[i] = _cvtsh_ss(in[i]);
}

static int detect_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
#else
static int detect_avx2(void) { return 0; }
#endif

// MARK: - Entry points

static int avx2_state = -1;
static _Thread_local int portable_only = 0;

int lk_uses_avx2(void) {
    if (portable_only) return 0;
    return lk_detect_once(&avx2_state, detect_avx2);
}

void lk_use_portable_on_this_thread(int portable) { portable_only = portable; }

void lk_gemv_packed_f32(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                        lk_rows layout, const float *x, const float *x_sums, float *y) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_gemv_f32(rows, count, segments, segment_count, layout, x, x_sums, y);
        return;
    }
#endif
    generic_gemv_f32(rows, count, segments, segment_count, layout, x, x_sums, y);
}

void lk_gemv_packed_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                       lk_rows layout, const int32_t *code_sums, const uint8_t *codes, const int32_t *x_sums,
                       const float *scales, const float *zeros, float *y) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_gemv_u8(rows, count, segments, segment_count, layout, code_sums, codes, x_sums, scales, zeros, y);
        return;
    }
#endif
    generic_gemv_u8(rows, count, segments, segment_count, layout, code_sums, codes, x_sums, scales, zeros, y);
}

void lk_dequant_q4(const uint8_t *codes, float scale, float zero, float *out, int n) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_dequant_q4(codes, scale, zero, out, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) out[i] = ((float)nibble_at(codes, n, i) - zero) * scale;
}

void lk_dequant_q8(const int8_t *codes, float scale, float zero, float *out, int n) {
    for (int i = 0; i < n; i++) out[i] = ((float)codes[i] - zero) * scale;
}

void lk_dequant_rows(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                     lk_rows layout, int columns, float *out) {
    for (int r = 0; r < count; r++) {
        const uint8_t *codes = rows[r] + header_bytes(layout);
        for (int s = 0; s < segment_count; s++) {
            const lk_segment *g = &segments[s];
            float scale = scale_of(rows[r], layout, g->slot), zero = zero_of(rows[r], layout, g->slot);
            float *target = out + (size_t)r * (size_t)columns + g->start;
            if (g->bits == 4)
                lk_dequant_q4(codes + g->offset, scale, zero, target, g->count);
            else
                lk_dequant_q8((const int8_t *)(codes + g->offset), scale, zero, target, g->count);
        }
    }
}

int32_t lk_sum_q4(const uint8_t *codes, int n) {
#ifdef LK_X86
    if (lk_uses_avx2()) return avx2_sum_q4(codes, n);
#endif
    int32_t sum = 0;
    for (int i = 0; i < n; i++) sum += nibble_at(codes, n, i);
    return sum;
}

int32_t lk_sum_q8(const int8_t *codes, int n) {
    int32_t sum = 0;
    for (int i = 0; i < n; i++) sum += codes[i];
    return sum;
}

void lk_dequant_u4_seq(const uint8_t *codes, float scale, float zero, float *out, int n) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_dequant_u4_seq(codes, scale, zero, out, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) {
        int code = (i & 1) ? (codes[i >> 1] >> 4) : (codes[i >> 1] & 0x0F);
        out[i] = scale * ((float)code - zero);
    }
}

void lk_dequant_u8_seq(const uint8_t *codes, float scale, float zero, float *out, int n) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_dequant_u8_seq(codes, scale, zero, out, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) out[i] = scale * ((float)codes[i] - zero);
}

void lk_f16_to_f32(const uint16_t *in, float *out, int n) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_f16_to_f32(in, out, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) out[i] = half_to_float(in[i]);
}

void lk_gemv_f16(const uint16_t *w, int rows, int columns, const float *x, float *y) {
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_gemv_f16(w, rows, columns, x, y);
        return;
    }
#endif
    for (int r = 0; r < rows; r++) {
        float sum = 0;
        for (int i = 0; i < columns; i++) sum += half_to_float(w[(size_t)r * (size_t)columns + i]) * x[i];
        y[r] = sum;
    }
}

void lk_pause(void) {
#ifdef LK_X86
    _mm_pause();
#endif
}

#ifdef LK_X86
/// The range loop of `lk_quantize_asymmetric` over whole groups of eight: lanes start at x[0] and
/// keep `v < low ? v : low` (MINPS's rule, the scalar loop's), so NaNs after the first value are
/// skipped as there, and flagged in `unordered`; returns the index where the scalar loop resumes.
AVX2 static int avx2_range(const float *x, int n, float *low, float *high, int *unordered) {
    __m256 lo = _mm256_set1_ps(x[0]), hi = lo, nan = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    }
    float lows[8], highs[8];
    _mm256_storeu_ps(lows, lo);
    _mm256_storeu_ps(highs, hi);
    for (int k = 0; k < 8; k++) {
        *low = lows[k] < *low ? lows[k] : *low;
        *high = highs[k] > *high ? highs[k] : *high;
    }
    *unordered |= _mm256_movemask_ps(nan) != 0;
    return i > 0 ? i : 1;
}

/// The code loop of `lk_quantize_asymmetric`, eight at a time with the same IEEE operations
/// (a true division, round half to even, the clamps); returns how many values it did.
AVX2 static int avx2_codes(const float *x, int n, float scale, float zero, float levels, uint8_t *codes) {
    __m256 s = _mm256_set1_ps(scale), z = _mm256_set1_ps(zero), top = _mm256_set1_ps(levels);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + i), s);
        q = _mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(q, z), _mm256_setzero_ps()), top);
        __m256i words = _mm256_cvtps_epi32(q);
        __m128i halves = _mm_packus_epi32(_mm256_castsi256_si128(words), _mm256_extracti128_si256(words, 1));
        _mm_storel_epi64((__m128i *)(codes + i), _mm_packus_epi16(halves, halves));
    }
    return i;
}
#endif

int lk_quantize_asymmetric(const float *x, int n, int bits, int include_zero, float clip, uint8_t *codes,
                           float *scale_out, float *zero_out) {
    if (n <= 0) return 0;
    float low = x[0], high = x[0];
    int first = 1, unordered = 0;
#ifdef LK_X86
    if (lk_uses_avx2()) first = avx2_range(x, n, &low, &high, &unordered);
#endif
    for (int i = first; i < n; i++) {
        low = x[i] < low ? x[i] : low;
        high = x[i] > high ? x[i] : high;
        unordered |= x[i] != x[i];
    }
    // A NaN has no code: the caller quantizes in floats, as the fake quantizer does.
    if (unordered || x[0] != x[0]) return 0;
    if (include_zero) {
        // Swift's min(low, 0) and max(high, 0), signed zeros included.
        low = 0 < low ? 0 : low;
        high = 0 >= high ? 0 : high;
    }
    low *= clip;
    high *= clip;
    if (low == 0 && high == 0) {
        low = -1;
        high = 1;
    }
    float levels = (float)((1 << bits) - 1);
    float scale = (high - low) / levels;
    if (!(scale > 0) || !isfinite(scale)) return 0;
    float zero = rintf(-low / scale);
    int i = 0;
#ifdef LK_X86
    if (lk_uses_avx2()) i = avx2_codes(x, n, scale, zero, levels, codes);
#endif
    for (; i < n; i++) {
        float code = rintf(x[i] / scale) + zero;
        code = code < 0 ? 0 : code;
        code = code > levels ? levels : code;
        codes[i] = (uint8_t)code;
    }
    *scale_out = scale;
    *zero_out = zero;
    return 1;
}

// Decoding attention over the quantized KV cache: each cached head vector dequantized on the
// stack as it is used, shared by the query heads that read it (grouped-query attention).
#include "lathe_kernels.h"

#include <math.h>
#include <string.h>

#include "simd.h"

/// A piece's part scale and zero point, from the record's F32 scale and Int16 zero point.
static inline void piece_parameters(const uint8_t *record, const lk_kv_piece *piece, float *scale, float *zero) {
    int16_t integer;
    memcpy(scale, record + piece->params, sizeof *scale);
    memcpy(&integer, record + piece->params + 4, sizeof integer);
    *zero = (float)integer;
}

/// One piece of a cached head vector, value by value.
static void generic_dequant_piece(const uint8_t *record, const lk_kv_piece *piece, float *out) {
    float scale, zero;
    piece_parameters(record, piece, &scale, &zero);
    const uint8_t *codes = record + piece->codes;
    for (int i = 0; i < piece->count; i++) {
        int e = piece->first + i;
        int code = piece->bits <= 4 ? ((e & 1) ? (codes[e >> 1] >> 4) : (codes[e >> 1] & 0x0F)) : codes[e];
        out[piece->target + i] = scale * ((float)code - zero);
    }
}

/// One head vector of a cached token, piece by piece.
static void generic_dequant_head(const uint8_t *record, const lk_kv_piece *pieces, int count, float *out) {
    for (int p = 0; p < count; p++) generic_dequant_piece(record, &pieces[p], out);
}

static float generic_dot(const float *a, const float *b, int n) {
    float sum = 0;
    for (int i = 0; i < n; i++) sum += a[i] * b[i];
    return sum;
}

static void generic_axpy(float alpha, const float *x, float *y, int n) {
    for (int i = 0; i < n; i++) y[i] += alpha * x[i];
}

/// e^(s − max) over n scores in place; returns their sum and the max in `maximum`.
static float exp_shifted(float *scores, int n, float *maximum) {
    float top = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++) top = scores[j] > top ? scores[j] : top;
    for (int j = 0; j < n; j++) {
        scores[j] = expf(scores[j] - top);
        sum += scores[j];
    }
    *maximum = top;
    return sum;
}

/// Softmax of `scores` in place: the maximum subtracted, e^x, normalised by the sum.
static void softmax(float *scores, int n) {
    float maximum;
    float inverse = 1 / exp_shifted(scores, n, &maximum);
    for (int j = 0; j < n; j++) scores[j] *= inverse;
}

// Every body takes the entry point's parameters.
#define ATTEND_PARAMETERS                                                                                \
    const float *q, int query_heads, int head_dim, float scale, const uint8_t *keys, int key_record,    \
        const lk_kv_piece *key_pieces, int key_piece_count, const uint8_t *values, int value_record,    \
        const lk_kv_piece *value_pieces, int value_piece_count, int visible, float *scores, float *out
#define ATTEND_ARGUMENTS                                                                                 \
    q, query_heads, head_dim, scale, keys, key_record, key_pieces, key_piece_count, values, value_record, \
        value_pieces, value_piece_count, visible, scores, out

// Scores of every query head against each key as it is dequantized, the softmaxes, then the
// values, each dequantized once and added into every head's output.
#define ATTEND(dequant, dot, axpy, softmax)                                                          \
    float vector[512];                                                                              \
    for (int j = 0; j < visible; j++) {                                                             \
        dequant(keys + (size_t)j * (size_t)key_record, key_pieces, key_piece_count, vector);        \
        for (int h = 0; h < query_heads; h++)                                                       \
            scores[(size_t)h * (size_t)visible + j] = dot(q + h * head_dim, vector, head_dim) * scale; \
    }                                                                                               \
    for (int h = 0; h < query_heads; h++) softmax(scores + (size_t)h * (size_t)visible, visible);   \
    memset(out, 0, sizeof(float) * (size_t)(query_heads * head_dim));                               \
    for (int j = 0; j < visible; j++) {                                                             \
        dequant(values + (size_t)j * (size_t)value_record, value_pieces, value_piece_count, vector); \
        for (int h = 0; h < query_heads; h++)                                                       \
            axpy(scores[(size_t)h * (size_t)visible + j], vector, out + h * head_dim, head_dim);     \
    }

static void generic_attend(ATTEND_PARAMETERS) { ATTEND(generic_dequant_head, generic_dot, generic_axpy, softmax) }

#ifdef LK_X86
/// `generic_dequant_head` with 4-bit pieces that start on a byte unpacked 32 codes at a time
/// and 8-bit pieces 8 at a time, each value scale · (code − zero) as the scalar body computes it.
AVX2 static void avx2_dequant_head(const uint8_t *record, const lk_kv_piece *pieces, int count, float *out) {
    for (int p = 0; p < count; p++) {
        const lk_kv_piece *piece = &pieces[p];
        if (piece->bits <= 4 && piece->first % 2 != 0) {
            generic_dequant_piece(record, piece, out);
            continue;
        }
        float scale, zero;
        piece_parameters(record, piece, &scale, &zero);
        const uint8_t *codes = record + piece->codes;
        float *target = out + piece->target;
        if (piece->bits <= 4)
            avx2_dequant_u4_seq(codes + piece->first / 2, scale, zero, target, piece->count);
        else
            avx2_dequant_u8_seq(codes + piece->first, scale, zero, target, piece->count);
    }
}

/// e^(s − max) over n scores in place; returns their sum and the max in `maximum`.
AVX2 static float avx2_exp_shifted(float *scores, int n, float *maximum) {
    __m256 maxima = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) maxima = _mm256_max_ps(maxima, _mm256_loadu_ps(scores + i));
    float lanes[8], top = -INFINITY;
    _mm256_storeu_ps(lanes, maxima);
    for (int k = 0; k < 8; k++) top = lanes[k] > top ? lanes[k] : top;
    for (; i < n; i++) top = scores[i] > top ? scores[i] : top;
    __m256 shift = _mm256_set1_ps(top), sums = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = avx2_exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(scores + i), shift));
        _mm256_storeu_ps(scores + i, e);
        sums = _mm256_add_ps(sums, e);
    }
    float sum = hsum_f32(sums);
    for (; i < n; i++) {
        scores[i] = expf(scores[i] - top);
        sum += scores[i];
    }
    *maximum = top;
    return sum;
}

AVX2 static void avx2_softmax(float *scores, int n) {
    float maximum;
    float inverse = 1 / avx2_exp_shifted(scores, n, &maximum);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(scores + i, _mm256_mul_ps(_mm256_loadu_ps(scores + i), _mm256_set1_ps(inverse)));
    for (; i < n; i++) scores[i] *= inverse;
}

AVX2 static float avx2_dot(const float *a, const float *b, int n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    float sum = hsum_f32(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) sum += a[i] * b[i];
    return sum;
}

AVX2 static void avx2_axpy(float alpha, const float *x, float *y, int n) {
    __m256 a = _mm256_set1_ps(alpha);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(a, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += alpha * x[i];
}

/// Cached positions dequantized at a time by the blocked body: 32 head vectors of up to 64 values
/// are 8 KB, which stays in L1 while every query head reads them.
#define ATTEND_BLOCK 32

/// Eight dot products' lanes summed into one vector of eight (hadd tree, then the halves added).
AVX2 static inline __m256 avx2_reduce8(const __m256 acc[8]) {
    __m256 t0 = _mm256_hadd_ps(acc[0], acc[1]), t1 = _mm256_hadd_ps(acc[2], acc[3]);
    __m256 t2 = _mm256_hadd_ps(acc[4], acc[5]), t3 = _mm256_hadd_ps(acc[6], acc[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/// Head vectors of cached positions [start, start + count) dequantized into `block`, 64 apart.
AVX2 static inline void avx2_dequant_block(const uint8_t *records, int record_bytes, const lk_kv_piece *pieces,
                                           int piece_count, int start, int count, float *block) {
    for (int p = 0; p < count; p++)
        avx2_dequant_head(records + (size_t)(start + p) * (size_t)record_bytes, pieces, piece_count, block + 64 * p);
}

/// Scores of every query head against cached positions [first, end) for head_dim = 64, in blocks:
/// each block's keys dequantized once into an L1 buffer, then every query head scores eight
/// positions at a time with one reduction for the eight.
AVX2 static void avx2_scores64(const float *q, int query_heads, float scale, const uint8_t *keys, int key_record,
                               const lk_kv_piece *key_pieces, int key_piece_count, int visible, float *scores,
                               int first, int end) {
    float block[ATTEND_BLOCK * 64];
    for (int start = first; start < end; start += ATTEND_BLOCK) {
        int count = end - start < ATTEND_BLOCK ? end - start : ATTEND_BLOCK;
        avx2_dequant_block(keys, key_record, key_pieces, key_piece_count, start, count, block);
        for (int h = 0; h < query_heads; h++) {
            const float *query = q + 64 * h;
            float *row = scores + (size_t)h * (size_t)visible + start;
            int p = 0;
            for (; p + 8 <= count; p += 8) {
                __m256 acc[8];
                for (int k = 0; k < 8; k++) {
                    const float *key = block + 64 * (p + k);
                    __m256 a = _mm256_mul_ps(_mm256_loadu_ps(query), _mm256_loadu_ps(key));
                    for (int c = 8; c < 64; c += 8)
                        a = _mm256_fmadd_ps(_mm256_loadu_ps(query + c), _mm256_loadu_ps(key + c), a);
                    acc[k] = a;
                }
                _mm256_storeu_ps(row + p, _mm256_mul_ps(avx2_reduce8(acc), _mm256_set1_ps(scale)));
            }
            for (; p < count; p++) row[p] = avx2_dot(query, block + 64 * p, 64) * scale;
        }
    }
}

/// out_h += Σ_j weight_hj · v_j over cached positions [first, end) for head_dim = 64, the weights
/// being the scores rows: each block's values dequantized once, each head's output in registers.
AVX2 static void avx2_accumulate64(int query_heads, const uint8_t *values, int value_record,
                                   const lk_kv_piece *value_pieces, int value_piece_count, int visible,
                                   const float *scores, float *out, int first, int end) {
    float block[ATTEND_BLOCK * 64];
    for (int start = first; start < end; start += ATTEND_BLOCK) {
        int count = end - start < ATTEND_BLOCK ? end - start : ATTEND_BLOCK;
        avx2_dequant_block(values, value_record, value_pieces, value_piece_count, start, count, block);
        for (int h = 0; h < query_heads; h++) {
            const float *weights = scores + (size_t)h * (size_t)visible + start;
            float *target = out + 64 * h;
            __m256 o[8];
            for (int c = 0; c < 8; c++) o[c] = _mm256_loadu_ps(target + 8 * c);
            for (int p = 0; p < count; p++) {
                __m256 weight = _mm256_set1_ps(weights[p]);
                const float *value = block + 64 * p;
                for (int c = 0; c < 8; c++) o[c] = _mm256_fmadd_ps(weight, _mm256_loadu_ps(value + 8 * c), o[c]);
            }
            for (int c = 0; c < 8; c++) _mm256_storeu_ps(target + 8 * c, o[c]);
        }
    }
}

/// `ATTEND` for head_dim = 64 (most models) in blocks of cached positions (`avx2_scores64`,
/// `avx2_accumulate64`): no output loaded and stored per position. The scores' sums differ in order
/// from the per-position body; the values' are the same.
AVX2 static void avx2_attend64(ATTEND_PARAMETERS) {
    (void)head_dim;
    avx2_scores64(q, query_heads, scale, keys, key_record, key_pieces, key_piece_count, visible, scores, 0, visible);
    for (int h = 0; h < query_heads; h++) avx2_softmax(scores + (size_t)h * (size_t)visible, visible);
    memset(out, 0, sizeof(float) * (size_t)(query_heads * 64));
    avx2_accumulate64(query_heads, values, value_record, value_pieces, value_piece_count, visible, scores, out, 0,
                      visible);
}

AVX2 static void avx2_attend64_span(ATTEND_PARAMETERS, int first, int count, float *maxima, float *sums) {
    (void)head_dim;
    avx2_scores64(q, query_heads, scale, keys, key_record, key_pieces, key_piece_count, visible, scores, first,
                  first + count);
    for (int h = 0; h < query_heads; h++)
        sums[h] = avx2_exp_shifted(scores + (size_t)h * (size_t)visible + first, count, &maxima[h]);
    memset(out, 0, sizeof(float) * (size_t)(query_heads * 64));
    avx2_accumulate64(query_heads, values, value_record, value_pieces, value_piece_count, visible, scores, out,
                      first, first + count);
}

AVX2 static void avx2_attend(ATTEND_PARAMETERS) {
    if (head_dim == 64) {
        avx2_attend64(ATTEND_ARGUMENTS);
        return;
    }
    ATTEND(avx2_dequant_head, avx2_dot, avx2_axpy, avx2_softmax)
}

#endif

void lk_softmax(float *scores, int n) {
    if (n <= 0) return;
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_softmax(scores, n);
        return;
    }
#endif
    softmax(scores, n);
}

void lk_attend_quantized(ATTEND_PARAMETERS) {
    if (head_dim > 512 || visible <= 0) {
        memset(out, 0, sizeof(float) * (size_t)(query_heads > 0 && head_dim > 0 ? query_heads * head_dim : 0));
        return;
    }
#ifdef LK_X86
    if (lk_uses_avx2()) {
        avx2_attend(ATTEND_ARGUMENTS);
        return;
    }
#endif
    generic_attend(ATTEND_ARGUMENTS);
}

/// `lk_attend_quantized_span`'s portable body: the per-position steps over the span, e^(s − max)
/// unnormalised.
static void generic_attend_span(ATTEND_PARAMETERS, int first, int count, float *maxima, float *sums) {
    float vector[512];
    for (int j = first; j < first + count; j++) {
        generic_dequant_head(keys + (size_t)j * (size_t)key_record, key_pieces, key_piece_count, vector);
        for (int h = 0; h < query_heads; h++)
            scores[(size_t)h * (size_t)visible + j] = generic_dot(q + h * head_dim, vector, head_dim) * scale;
    }
    for (int h = 0; h < query_heads; h++)
        sums[h] = exp_shifted(scores + (size_t)h * (size_t)visible + first, count, &maxima[h]);
    memset(out, 0, sizeof(float) * (size_t)(query_heads * head_dim));
    for (int j = first; j < first + count; j++) {
        generic_dequant_head(values + (size_t)j * (size_t)value_record, value_pieces, value_piece_count, vector);
        for (int h = 0; h < query_heads; h++)
            generic_axpy(scores[(size_t)h * (size_t)visible + j], vector, out + h * head_dim, head_dim);
    }
}

void lk_attend_quantized_span(ATTEND_PARAMETERS, int first, int count, float *maxima, float *sums) {
    if (head_dim > 512 || count <= 0 || first < 0 || first + count > visible) {
        memset(out, 0, sizeof(float) * (size_t)(query_heads > 0 && head_dim > 0 ? query_heads * head_dim : 0));
        for (int h = 0; h < query_heads; h++) {
            maxima[h] = -INFINITY;
            sums[h] = 0;
        }
        return;
    }
#ifdef LK_X86
    if (lk_uses_avx2() && head_dim == 64) {
        avx2_attend64_span(ATTEND_ARGUMENTS, first, count, maxima, sums);
        return;
    }
#endif
    generic_attend_span(ATTEND_ARGUMENTS, first, count, maxima, sums);
}

void lk_attend_merge(int query_heads, int head_dim, int spans, const float *maxima, const float *sums,
                     const float *outs, float *out) {
    for (int h = 0; h < query_heads; h++) {
        float top = -INFINITY;
        for (int s = 0; s < spans; s++) {
            float m = maxima[s * query_heads + h];
            top = m > top ? m : top;
        }
        float total = 0;
        float *target = out + h * head_dim;
        for (int i = 0; i < head_dim; i++) target[i] = 0;
        for (int s = 0; s < spans; s++) {
            float weight = sums[s * query_heads + h] > 0 ? expf(maxima[s * query_heads + h] - top) : 0;
            total += weight * sums[s * query_heads + h];
            const float *part = outs + ((size_t)s * (size_t)query_heads + (size_t)h) * (size_t)head_dim;
            for (int i = 0; i < head_dim; i++) target[i] += weight * part[i];
        }
        float inverse = total > 0 ? 1 / total : 0;
        for (int i = 0; i < head_dim; i++) target[i] *= inverse;
    }
}

// Online transforms: the fake quantizer of activations, the per-head query/key rotation (U_C) of a
// decoded token with its integer input, and the fast Walsh–Hadamard transform of the FFN's inner
// activation (U_D). Decoding runs the last two once per layer on the main thread while the workers
// wait, so their cost is serial time.
#include "lathe_kernels.h"

#include <math.h>
#include <string.h>

#include "simd.h"

int lk_fake_quantize(float *x, int n, int bits, int include_zero, float clip, uint8_t *codes) {
    float scale, zero;
    if (bits > 8 || !lk_quantize_asymmetric(x, n, bits, include_zero, clip, codes, &scale, &zero)) return 0;
    lk_dequant_u8_seq(codes, scale, zero, x, n);
    return 1;
}

/// The rotation's integer input: zero in the range, no clipping. A vector the quantizer declines
/// keeps its values, as the fake quantizer leaves it (a NaN then spreads to every output, as there).
static void fake_quantize(float *x, int n, int bits) {
    uint8_t codes[512];
    lk_fake_quantize(x, n, bits, 1, 1.0f, codes);
}

static void generic_rotate(float *x, int head_dim, const float *rotation) {
    float y[512];
    for (int j = 0; j < head_dim; j++) y[j] = 0;
    for (int i = 0; i < head_dim; i++)
        for (int j = 0; j < head_dim; j++) y[j] = fmaf(x[i], rotation[i * head_dim + j], y[j]);
    memcpy(x, y, sizeof(float) * (size_t)head_dim);
}

#ifdef LK_X86
/// The first three butterfly stages of eight values (pairs 1, 2 and 4 apart) as lane shuffles:
/// each stage's low lanes take a + b and its high lanes a − b, the scalar loop's operations.
AVX2 static void avx2_butterflies8(float *x) {
    __m256 v = _mm256_loadu_ps(x);
    __m256 s = _mm256_permute_ps(v, 0xB1);
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xAA);
    s = _mm256_permute_ps(v, 0x4E);
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xCC);
    s = _mm256_permute2f128_ps(v, v, 0x01);
    v = _mm256_blend_ps(_mm256_add_ps(v, s), _mm256_sub_ps(s, v), 0xF0);
    _mm256_storeu_ps(x, v);
}

AVX2 static inline void avx2_butterfly_span(float *low, float *high) {
    __m256 a = _mm256_loadu_ps(low), b = _mm256_loadu_ps(high);
    _mm256_storeu_ps(low, _mm256_add_ps(a, b));
    _mm256_storeu_ps(high, _mm256_sub_ps(a, b));
}

/// y = x · U for 64 columns (the head size of most models) a row of U at a time, the sums in eight
/// registers: each y[j] is the same fused sum over i in order as the portable body's.
AVX2 static void avx2_rotate64(float *x, const float *rotation) {
    __m256 y0 = _mm256_setzero_ps(), y1 = y0, y2 = y0, y3 = y0, y4 = y0, y5 = y0, y6 = y0, y7 = y0;
    for (int i = 0; i < 64; i++) {
        __m256 xi = _mm256_set1_ps(x[i]);
        const float *row = rotation + 64 * i;
        y0 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row), y0);
        y1 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 8), y1);
        y2 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 16), y2);
        y3 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 24), y3);
        y4 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 32), y4);
        y5 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 40), y5);
        y6 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 48), y6);
        y7 = _mm256_fmadd_ps(xi, _mm256_loadu_ps(row + 56), y7);
    }
    _mm256_storeu_ps(x, y0);
    _mm256_storeu_ps(x + 8, y1);
    _mm256_storeu_ps(x + 16, y2);
    _mm256_storeu_ps(x + 24, y3);
    _mm256_storeu_ps(x + 32, y4);
    _mm256_storeu_ps(x + 40, y5);
    _mm256_storeu_ps(x + 48, y6);
    _mm256_storeu_ps(x + 56, y7);
}

/// `mix_base` eight columns at a time.
AVX2 static void avx2_mix_base(const float *x, int base, int columns, const float *entries, float *y) {
    for (int a = 0; a < base; a++)
        for (int b = 0; b < columns; b += 8) {
            __m256 acc = _mm256_setzero_ps();
            for (int c = 0; c < base; c++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(entries[a * base + c]),
                                      _mm256_loadu_ps(x + (size_t)c * (size_t)columns + b), acc);
            _mm256_storeu_ps(y + (size_t)a * (size_t)columns + b, acc);
        }
}
#endif

void lk_rotate_heads(float *x, int rows, int head_dim, const float *rotation, int bits) {
    if (head_dim <= 0 || head_dim > 512) return;
    for (int r = 0; r < rows; r++) {
        float *vector = x + (size_t)r * (size_t)head_dim;
        if (bits > 0) fake_quantize(vector, head_dim, bits);
#ifdef LK_X86
        if (lk_uses_avx2() && head_dim == 64) {
            avx2_rotate64(vector, rotation);
            continue;
        }
#endif
        generic_rotate(vector, head_dim, rotation);
    }
}

/// The Sylvester butterflies of one block of `n` (a power of two) values: stage by stage,
/// (a, b) → (a + b, a − b) for pairs `half` apart. The same additions in any order of the pairs.
static void butterflies(float *x, int n) {
    int half = 1;
#ifdef LK_X86
    if (lk_uses_avx2() && n >= 8) {
        // The three stages within eight values as lane shuffles, then whole registers.
        for (int i = 0; i < n; i += 8) avx2_butterflies8(x + i);
        half = 8;
    }
#endif
    for (; half < n; half *= 2)
        for (int start = 0; start < n; start += 2 * half) {
            float *low = x + start, *high = x + start + half;
            int i = 0;
#ifdef LK_X86
            if (lk_uses_avx2())
                for (; i + 8 <= half; i += 8) avx2_butterfly_span(low + i, high + i);
#endif
            for (; i < half; i++) {
                float a = low[i], b = high[i];
                low[i] = a + b;
                high[i] = a - b;
            }
        }
}

/// y[a, b] = Σ_c had[a, c] · x[c, b], summed over c from 0 as the Swift plan does; the entries are
/// ±1, so each product is exact and fused or not the sums are the same.
static void mix_base(const float *x, int base, int columns, const float *entries, float *y) {
    for (int a = 0; a < base; a++) {
        float *target = y + (size_t)a * (size_t)columns;
        for (int b = 0; b < columns; b++) target[b] = 0;
        for (int c = 0; c < base; c++) {
            float weight = entries[a * base + c];
            const float *source = x + (size_t)c * (size_t)columns;
            for (int b = 0; b < columns; b++) target[b] += weight * source[b];
        }
    }
}

void lk_hadamard(float *x, int base, int power_of_two, const float *base_entries, float scale) {
    for (int block = 0; block < base; block++) butterflies(x + (size_t)block * (size_t)power_of_two, power_of_two);
    int order = base * power_of_two;
    if (base > 1) {
        float mixed[order];
#ifdef LK_X86
        if (lk_uses_avx2() && power_of_two % 8 == 0)
            avx2_mix_base(x, base, power_of_two, base_entries, mixed);
        else
#endif
            mix_base(x, base, power_of_two, base_entries, mixed);
        memcpy(x, mixed, sizeof(float) * (size_t)order);
    }
    if (scale != 1)
        for (int i = 0; i < order; i++) x[i] *= scale;
}

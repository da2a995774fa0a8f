// The packed rows' layout (formats/packed/SPEC.md §4) as the kernel files read it, and the AVX2
// integer blocks the GEMV and the GEMM share.
#ifndef LATHE_KERNELS_PACKED_ROWS_H
#define LATHE_KERNELS_PACKED_ROWS_H

#include <string.h>

#include "lathe_kernels.h"
#include "simd.h"

// A 4-bit segment is cut into blocks of 64 columns; a block of m columns uses h = (m + 1) / 2
// bytes, byte j holding column j (low nibble) and column j + h (high nibble), each as q + 8.

static inline int nibble_at(const uint8_t *codes, int n, int i) {
    int block = i / 64;
    int m = n - block * 64;
    if (m > 64) m = 64;
    int h = (m + 1) / 2;
    int j = i - block * 64;
    uint8_t byte = codes[block * 32 + (j < h ? j : j - h)];
    return (int)(j < h ? (byte & 0x0F) : (byte >> 4)) - 8;
}

static inline float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF, bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000 | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal: normalise the mantissa.
        int shift = 0;
        while (!(mantissa & 0x400)) {
            mantissa <<= 1;
            shift++;
        }
        bits = sign | ((uint32_t)(113 - shift) << 23) | ((mantissa & 0x3FF) << 13);
    }
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/// Bytes of one scale: 2 (F16) or 4 (F32).
static inline int scale_bytes(lk_rows layout) { return layout.half_scales ? 2 : 4; }

static inline float scale_of(const uint8_t *row, lk_rows layout, int slot) {
    if (layout.half_scales) {
        uint16_t bits;
        memcpy(&bits, row + 2 * slot, sizeof bits);
        return half_to_float(bits);
    }
    float scale;
    memcpy(&scale, row + 4 * slot, sizeof scale);
    return scale;
}

/// Bytes before a row's codes: its scales and zero points.
static inline int header_bytes(lk_rows layout) {
    return (scale_bytes(layout) + (layout.zero_points ? 1 : 0)) * layout.slots;
}

static inline float zero_of(const uint8_t *row, lk_rows layout, int slot) {
    return layout.zero_points ? (float)(int8_t)row[scale_bytes(layout) * layout.slots + slot] : 0.0f;
}

#ifdef LK_X86
/// Σ (nibble − 8) · a over one 64-column block: maddubs takes the activation codes as its unsigned
/// operand and the centred nibbles as its signed one (pairs ≤ 2 · 255 · 8, two of them still fit
/// in 16 bits), so the sum is exact and needs no correction.
AVX2 static inline __m256i block_q4_loaded(const uint8_t *w, __m256i a_low, __m256i a_high, __m256i acc) {
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i v = _mm256_loadu_si256((const __m256i *)w);
    __m256i lo = _mm256_sub_epi8(_mm256_and_si256(v, mask), eight);
    __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), mask), eight);
    __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(a_low, lo), _mm256_maddubs_epi16(a_high, hi));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
}

/// Σ w · a over 16 columns of int8 weights, `a` their activation codes widened to 16 bits.
AVX2 static inline __m256i block_q8(const uint8_t *w, __m256i a, __m256i acc) {
    return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w)), a));
}

AVX2 static inline __m256i block_q4(const uint8_t *w, const uint8_t *a, __m256i acc) {
    return block_q4_loaded(w, _mm256_loadu_si256((const __m256i *)a), _mm256_loadu_si256((const __m256i *)(a + 32)),
                           acc);
}

/// `scale_of`, widening F16 scales with F16C instead of `half_to_float`.
AVX2 static inline float avx2_scale_of(const uint8_t *row, lk_rows layout, int slot) {
    if (!layout.half_scales) return scale_of(row, layout, slot);
    uint16_t bits;
    memcpy(&bits, row + 2 * slot, sizeof bits);
    return _cvtsh_ss(bits);
}

#endif

#endif

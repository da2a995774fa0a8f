// Low-bit kernels of Lathe's runtime over the packed integer encoding (formats/packed/SPEC.md §4)
// and the quantized KV cache. Each entry point picks an AVX2 body when the CPU has one and a
// portable body otherwise, so one binary runs everywhere.
#ifndef LATHE_KERNELS_H
#define LATHE_KERNELS_H

#include <stdint.h>

/// One column segment of a packed row: its columns, code width, scale slot, where its codes start
/// inside the row (after the scales), the activation part holding it (integer path) and where it
/// starts in the expanded activation (`lk_expand_*`).
typedef struct {
    int32_t start;
    int32_t count;
    int32_t bits;
    int32_t slot;
    int32_t offset;
    int32_t part;
    int32_t expanded;
} lk_segment;

/// Elements a segment takes in the expanded activation: whole blocks of 64 (4-bit) or 16 (8-bit).
int lk_expanded_count(const lk_segment *segment);

/// Lays activations out block by block as the kernels read them: a 4-bit block of m columns puts
/// its first h = ⌈m/2⌉ values in elements 0..h−1 and the rest in 32..32+m−h−1, zeros elsewhere, so
/// that every block, full or short, is two aligned halves against the codes' low and high nibbles.
/// Done once per token and shared by all rows.
void lk_expand_u8(const uint8_t *codes, const lk_segment *segments, int segment_count, uint8_t *out);
void lk_expand_f32(const float *x, const lk_segment *segments, int segment_count, float *out);

/// The layout of a packed matrix's rows: `slots` scales (F32, or F16 with `half_scales`), then (when
/// `zero_points`) `slots` int8 weight zero points z, then the codes. A weight is scale · (q − z);
/// without zero points z = 0.
typedef struct {
    int32_t slots;
    int32_t zero_points;
    int32_t half_scales;
} lk_rows;

/// The terms weight zero points multiply, once per token: Σ x over the segments of each scale slot
/// (`slots` sums) of an expanded float activation, and Σ a over each segment of expanded activation
/// codes (their padding is zero).
void lk_slot_sums_f32(const float *x, const lk_segment *segments, int segment_count, int slots, float *sums);
void lk_segment_sums_u8(const uint8_t *x, const lk_segment *segments, int segment_count, int32_t *sums);

/// y[i] = Σ_segments scale(row i, slot) · Σ q · x − Σ_slots scale(row i, slot) · z(row i, slot) · Σ x
/// for the given row starts, x expanded, `x_sums` its slot sums (read only with zero points). Reads up to 31
/// bytes past a segment's codes: the caller guarantees they are readable (the last row of a
/// buffer is copied into a padded one).
void lk_gemv_packed_f32(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                        lk_rows layout, const float *x, const float *x_sums, float *y);

/// The same with x quantized per part (expanded unsigned codes a, scales, zero points za): integer
/// dot products, then scale(row) · scale(part) · (Σ q·a − za · Σ q − z · (Σ a − za · count)), Σ q
/// from `code_sums` (row-major, rows × segments, starting at the first of these rows), Σ a from
/// `x_sums` (per segment; read only with weight zero points).
void lk_gemv_packed_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                       lk_rows layout, const int32_t *code_sums, const uint8_t *codes, const int32_t *x_sums,
                       const float *scales, const float *zeros, float *y);

/// The same product for `tokens` tokens at once (a prompt), each token's expanded codes `code_stride`
/// bytes after the last and its part scales and zero points `part_stride` floats after the last:
/// y[t · ldy + r] is bit for bit what `lk_gemv_packed_u8` gives token t's codes on row r. Only for
/// rows without weight zero points: returns 0 (and writes nothing) for a layout with them.
int lk_gemm_packed_u8(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                      lk_rows layout, const int32_t *code_sums, const uint8_t *codes, int code_stride, int tokens,
                      const float *scales, const float *zeros, int part_stride, float *y, int ldy);

/// Whether the integer GEMM's 4-bit products use AVX-VNNI (VPDPBUSD) on this thread; the same sums
/// as the AVX2 body's. `lk_avoid_vnni_on_this_thread(1)` keeps this thread on the AVX2 body (tests).
int lk_uses_vnni(void);
void lk_avoid_vnni_on_this_thread(int avoid);

/// Σ q of a segment's codes (the zero-point term of an asymmetric activation).
int32_t lk_sum_q4(const uint8_t *codes, int n);
int32_t lk_sum_q8(const int8_t *codes, int n);

/// Rows of a packed matrix decoded to floats, `columns` apart in `out`: each value
/// (float)(q − z) · scale, exactly as `lk_dequant_q4`/`lk_dequant_q8` give it segment by segment.
void lk_dequant_rows(const uint8_t *const *rows, int count, const lk_segment *segments, int segment_count,
                     lk_rows layout, int columns, float *out);

/// out_i = (float)(q_i − zero) · scale for a 4-bit or 8-bit segment (zero: the slot's weight zero
/// point, 0 without).
void lk_dequant_q4(const uint8_t *codes, float scale, float zero, float *out, int n);
void lk_dequant_q8(const int8_t *codes, float scale, float zero, float *out, int n);

/// Unsigned codes of an asymmetric quantizer, two per byte (element 2k in the low nibble) or one
/// per byte: out_i = scale · (code_i − zero).
void lk_dequant_u4_seq(const uint8_t *codes, float scale, float zero, float *out, int n);
void lk_dequant_u8_seq(const uint8_t *codes, float scale, float zero, float *out, int n);

/// Where a piece of one cached head vector lies in a token's record of the quantized KV cache: the
/// part's codes (4-bit two per byte, element 2k in the low nibble, or 8-bit one per byte), the
/// piece's first element and length inside that part, the part's F32 scale followed by its Int16
/// zero point, and where the piece goes in the head vector.
typedef struct {
    int32_t codes;
    int32_t first;
    int32_t count;
    int32_t bits;
    int32_t params;
    int32_t target;
} lk_kv_piece;

/// gate_i ← silu(gate_i) · up_i = gate_i / (1 + e^−gate_i) · up_i (SwiGLU). The AVX2 body uses the
/// softmax's e^x, so values agree with the scalar formula to a few ulp, except below gate −87.3,
/// where it gives 0 (silu itself is then below 1e-36 in magnitude).
void lk_silu_mul(float *gate, const float *up, int n);

/// The first index of the largest of n values (greedy decoding's token), as the loop
/// `best = 0; for i in 1..<n where x[i] > x[best] { best = i }` finds it; −1 when n ≤ 0.
int lk_argmax(const float *x, int n);

/// Softmax of n scores in place (the maximum subtracted before e^x). The AVX2 body computes e^x
/// eight at a time, within 3 ulp of expf (0 where e^x < 1.2e-38, beside the largest term's 1).
void lk_softmax(float *scores, int n);

/// Attention of the `query_heads` consecutive query heads that share one KV head (q: their
/// `query_heads × head_dim` values) over `visible` cached tokens kept quantized (decoding): each
/// cached key and value head vector is dequantized once (scale · (code − zero), the values the
/// simulated path holds) into a buffer on the stack, scores = q · k · `scale`, softmax, then
/// out = Σ p_j v_j (`query_heads × head_dim`). `scores` has room for `query_heads × visible` floats
/// and ends holding the probabilities. head_dim must be at most 512 and visible at least 1; otherwise
/// `out` is zeroed and nothing else happens.
void lk_attend_quantized(const float *q, int query_heads, int head_dim, float scale, const uint8_t *keys,
                         int key_record, const lk_kv_piece *key_pieces, int key_piece_count, const uint8_t *values,
                         int value_record, const lk_kv_piece *value_pieces, int value_piece_count, int visible,
                         float *scores, float *out);

/// `lk_attend_quantized` over the cached positions [first, first + count) of `visible` only (a span,
/// one worker's share of a long context): scores go to their places in `scores` and become
/// e^(s − max) for the span, unnormalised; `maxima` and `sums` get each query head's max and
/// Σ e^(s − max), and `out` Σ e^(s − max) · v. `lk_attend_merge` combines the spans.
void lk_attend_quantized_span(const float *q, int query_heads, int head_dim, float scale, const uint8_t *keys,
                              int key_record, const lk_kv_piece *key_pieces, int key_piece_count,
                              const uint8_t *values, int value_record, const lk_kv_piece *value_pieces,
                              int value_piece_count, int visible, float *scores, float *out, int first, int count,
                              float *maxima, float *sums);

/// The attention output of `query_heads` heads from `spans` spans' unnormalised results (maxima and
/// sums `spans × query_heads`, outputs `spans × query_heads × head_dim`): each span's terms scaled by
/// e^(its max − the overall max), then divided by the scaled sum.
void lk_attend_merge(int query_heads, int head_dim, int spans, const float *maxima, const float *sums,
                     const float *outs, float *out);

/// y = W · x for a row-major F16 matrix (`rows × columns`, IEEE half, little-endian).
void lk_gemv_f16(const uint16_t *w, int rows, int columns, const float *x, float *y);

/// Float → IEEE half bits (little-endian, `out` needs no alignment), round to nearest even, every
/// NaN as sign | 0x7E00, for the first multiple of 8 of the n values when the CPU has F16C (and the
/// AVX2 bodies are in use); returns how many it converted (0 otherwise), leaving the rest to the caller.
int64_t lk_f32_to_f16(const float *in, void *out, int64_t n);

/// ggml's reference quantizer of `type` (ggml's id: 8 = Q8_0, 2 = Q4_0) over `blocks` blocks of 32
/// values into `y`, byte for byte as the reference (and LatheCore's portable path) writes them.
/// Returns the blocks done, in order, stopping before a block holding an infinity or a NaN, or whose
/// scale's inverse overflows (all values below about 1e-37), which the caller quantizes itself, then
/// calls again for the rest; -1 (nothing done) unless the AVX2 bodies are in use and the type is one
/// of these.
int64_t lk_quantize_ggml(int type, const float *x, int64_t blocks, void *y);

/// IEEE half → float, exactly.
void lk_f16_to_f32(const uint16_t *in, float *out, int n);

/// Asymmetric quantization of n values to `bits` bits exactly as Lathe's fake quantizer does it
/// (range widened to 0 when `include_zero`, times `clip`, 2^bits − 1 steps, integer zero point,
/// round half to even): writes the codes and the scale and zero point; returns 0 when the range
/// holds no step (the fake quantizer then leaves the values as they are) or a value is NaN (which
/// no code holds: the caller quantizes in floats).
int lk_quantize_asymmetric(const float *x, int n, int bits, int include_zero, float clip, uint8_t *codes,
                           float *scale, float *zero);

/// Fake quantization of n values in place, bit for bit as `UniformQuantizer.asymmetric`: the codes of
/// `lk_quantize_asymmetric` (written to `codes`, n bytes) decoded to scale · (code − zero). Returns 0
/// and leaves x as it is when `bits` > 8 or the quantizer declines (no step, or a NaN): the caller
/// then runs the float quantizer, which leaves a stepless range as it is too.
int lk_fake_quantize(float *x, int n, int bits, int include_zero, float clip, uint8_t *codes);

/// For each of `rows` head vectors of `x` (`head_dim` ≤ 512 values each), in place: when `bits` > 0,
/// fake-quantized as `lk_quantize_asymmetric` with zero in the range and no clipping does it (values
/// scale · (code − zero); a range without a step, or a vector with a NaN, is left as it is), then
/// x ← x · U for the row-major `head_dim × head_dim` matrix `rotation`, each output a fused sum over
/// the inputs in order.
void lk_rotate_heads(float *x, int rows, int head_dim, const float *rotation, int bits);

/// The unnormalised Walsh–Hadamard transform of one vector of `base · power_of_two` values in place,
/// then times `scale`: Sylvester butterflies within each contiguous block of `power_of_two`, then the
/// `base × base` ±1 matrix `base_entries` (row-major) across the blocks, summed in order. The same
/// operations as `HadamardPlan.apply`, so the same bits.
void lk_hadamard(float *x, int base, int power_of_two, const float *base_entries, float scale);

/// A spin-wait hint to the CPU (PAUSE on x86).
void lk_pause(void);

/// 1 when the AVX2 bodies are in use on this thread.
int lk_uses_avx2(void);

/// With 1, this thread's calls run the portable bodies (tests check both on one machine). Only the
/// calling thread: a session's worker threads keep the SIMD bodies.
void lk_use_portable_on_this_thread(int portable);

#endif

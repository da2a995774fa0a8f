import CKernels
import LatheCore
import LinearAlgebra

/// Attention: over the quantized KV cache's records in place while decoding, over float keys and
/// values (the float caches, or the quantized ones dequantized) otherwise.
extension LlamaSession {
    /// Decoding over quantized caches: one query against the cached codes, each cached head vector
    /// dequantized into a stack buffer as it is used (`lk_attend_quantized`) instead of the whole span
    /// into scratch; the workers take one KV head and its group of query heads at a time. The values
    /// are the simulated path's; only the order of the sums differs from `attendFloats`.
    func attendQuantized(
        _ layer: Int, _ q: [Float], span: Int, _ keyCache: QuantizedKVCache, _ valueCache: QuantizedKVCache,
        into attended: inout [Float]
    ) {
        let (hd, heads, groupSize, context) = (config.headDim, config.headCount, config.groupSize, maxContext)
        if attentionScores.count < heads * context { attentionScores = [Float](repeating: 0, count: heads * context) }
        let kvHeads = heads / groupSize
        q.withUnsafeBufferPointer { qp in
            attended.withUnsafeMutableBufferPointer { out in
                attentionScores.withUnsafeMutableBufferPointer { sp in
                    let operands = QuantizedAttention(
                        query: qp.baseAddress!, scores: sp.baseAddress!,
                        keys: keyCache.records(layer: layer).assumingMemoryBound(to: UInt8.self),
                        values: valueCache.records(layer: layer).assumingMemoryBound(to: UInt8.self),
                        keyRecord: Int32(keyCache.recordBytes), valueRecord: Int32(valueCache.recordBytes),
                        keyPieces: keyPieces, valuePieces: valuePieces, group: groupSize, headDim: hd,
                        context: context, span: span)
                    // Split by the span alone, never by the thread count, so that the sums (and
                    // with them a decoded token) do not depend on how many cores ran them.
                    if span >= Self.splitAttentionSpan {
                        attendInSpans(operands, kvHeads: kvHeads, into: out.baseAddress!)
                        return
                    }
                    // One KV head and the query heads that read it at a time: each cached vector is
                    // dequantized once for the group.
                    let output = UnsafeSendable(out.baseAddress!)
                    pool.run(kvHeads) { kvHead in operands.attend(kvHead, into: output.value + kvHead * groupSize * hd)
                    }
                }
            }
        }
    }

    /// Cached positions from which decoding's attention splits each KV head's span in two.
    static let splitAttentionSpan = 64

    /// `attendQuantized` with each KV head's span cut in two halves, one work item each, so that
    /// two cores share three KV heads evenly (whole heads left one core idle a third of the time).
    /// Each half leaves its unnormalised output and its heads' softmax maxima and sums; the halves
    /// are then merged (`lk_attend_merge`).
    private func attendInSpans(_ operands: QuantizedAttention, kvHeads: Int, into output: UnsafeMutablePointer<Float>) {
        let (hd, group, span) = (operands.headDim, operands.group, operands.span)
        let (items, outputFloats) = (2 * kvHeads, group * hd)
        let size = items * (outputFloats + 2 * group)
        if attentionPartials.count < size { attentionPartials = [Float](repeating: 0, count: size) }
        let middle = span / 2
        attentionPartials.withUnsafeMutableBufferPointer { partials in
            let base = UnsafeSendable(partials.baseAddress!)
            let statistics = items * outputFloats
            pool.run(items) { item in
                let (first, count) = item % 2 == 0 ? (0, middle) : (middle, span - middle)
                operands.attend(
                    item / 2, positions: first..<(first + count), into: base.value + item * outputFloats,
                    maxima: base.value + statistics + item * group,
                    sums: base.value + statistics + (items + item) * group)
            }
            for kvHead in 0..<kvHeads {
                let item = 2 * kvHead
                lk_attend_merge(
                    Int32(group), Int32(hd), 2, base.value + statistics + item * group,
                    base.value + statistics + (items + item) * group, base.value + item * outputFloats,
                    output + kvHead * group * hd)
            }
        }
    }

    /// Attention over float keys and values: the float caches, or the quantized ones dequantized
    /// for the span into scratch. Prefill multiplies blocks of query rows by GEMMs.
    func attendFloats(_ layer: Int, _ q: [Float], tokens t: Int, start: Int, into attended: inout [Float]) {
        let (hd, heads, kvHeads) = (config.headDim, config.headCount, config.kvHeadCount)
        let (qDim, kvDim) = (heads * hd, kvHeads * hd)
        let span = start + t
        if let keyCache {
            keyScratch.withUnsafeMutableBufferPointer {
                keyCache.dequantize(layer: layer, count: span, into: $0.baseAddress!)
            }
        }
        if let valueCache {
            valueScratch.withUnsafeMutableBufferPointer {
                valueCache.dequantize(layer: layer, count: span, into: $0.baseAddress!)
            }
        }
        let (keyView, valueView) = (
            keyCache == nil ? keys[layer] : keyScratch, valueCache == nil ? values[layer] : valueScratch
        )
        let scale = 1 / Float(hd).squareRoot()
        let groupSize = config.groupSize
        keyView.withUnsafeBufferPointer { kc in
            valueView.withUnsafeBufferPointer { vc in
                q.withUnsafeBufferPointer { qp in
                    attended.withUnsafeMutableBufferPointer { out in
                        let (kp, vp) = (UnsafeSendable(kc.baseAddress!), UnsafeSendable(vc.baseAddress!))
                        let (qq, op) = (UnsafeSendable(qp.baseAddress!), UnsafeSendable(out.baseAddress!))
                        // Heads are independent: one at a time per core.
                        let head: @Sendable (Int) -> Void = { head in
                            let kvHead = head / groupSize
                            // Rows in blocks, each against only the positions it can see: the causal mask
                            // would zero the rest, so those scores are never computed.
                            let block = 128
                            let scores = UnsafeMutablePointer<Float>.allocate(capacity: min(t, block) * span)
                            defer { scores.deallocate() }
                            for first in stride(from: 0, to: t, by: block) {
                                let rows = min(block, t - first)
                                let visible = start + first + rows
                                // scores = Q_h · K_hᵀ / √d, then softmax, then · V_h; one query
                                // (decoding) as GEMVs, which skip GEMM's packing copies.
                                let query = qq.value + first * qDim + head * hd
                                let output = op.value + first * qDim + head * hd
                                if rows == 1 {
                                    BLAS.gemv(
                                        rows: visible, columns: hd, alpha: scale, a: kp.value + kvHead * hd,
                                        lda: kvDim, x: query, y: scores)
                                } else {
                                    BLAS.gemm(
                                        transB: .transposed, m: rows, n: visible, k: hd, alpha: scale, a: query,
                                        lda: qDim, b: kp.value + kvHead * hd, ldb: kvDim, c: scores, ldc: visible)
                                }
                                for row in 0..<rows {
                                    Self.causalSoftmax(
                                        scores + row * visible, visible: start + first + row + 1, width: visible)
                                }
                                if rows == 1 {
                                    BLAS.gemv(
                                        rows: visible, columns: hd, a: vp.value + kvHead * hd, lda: kvDim,
                                        transposed: true, x: scores, y: output)
                                } else {
                                    BLAS.gemm(
                                        m: rows, n: hd, k: visible, a: scores, lda: visible, b: vp.value + kvHead * hd,
                                        ldb: kvDim, c: output, ldc: qDim)
                                }
                            }
                        }
                        if threads > 1 {
                            pool.run(heads, head)
                        } else {
                            for index in 0..<heads { head(index) }
                        }
                    }
                }
            }
        }
    }
}

/// One layer's operands of decoding attention over the quantized caches, as the kernels take them:
/// the query heads, the scores scratch (`maxContext` per query head), the caches' records and
/// where each KV head lies in them. Workers share it; each touches its own heads' scores and output.
struct QuantizedAttention: @unchecked Sendable {
    let query: UnsafePointer<Float>
    let scores: UnsafeMutablePointer<Float>
    let keys: UnsafePointer<UInt8>
    let values: UnsafePointer<UInt8>
    let keyRecord: Int32
    let valueRecord: Int32
    let keyPieces: [[lk_kv_piece]]
    let valuePieces: [[lk_kv_piece]]
    let group: Int
    let headDim: Int
    let context: Int
    let span: Int

    var scale: Float { 1 / Float(headDim).squareRoot() }

    /// The normalised attention of KV head `kvHead`'s query heads over the whole span.
    func attend(_ kvHead: Int, into output: UnsafeMutablePointer<Float>) {
        withHead(kvHead) { query, scores, kp, vp in
            lk_attend_quantized(
                query, Int32(group), Int32(headDim), scale, keys, keyRecord, kp.baseAddress, Int32(kp.count), values,
                valueRecord, vp.baseAddress, Int32(vp.count), Int32(span), scores, output)
        }
    }

    /// The same over `positions` only, unnormalised, with each query head's softmax max and sum
    /// (`lk_attend_quantized_span`).
    func attend(
        _ kvHead: Int, positions: Range<Int>, into output: UnsafeMutablePointer<Float>,
        maxima: UnsafeMutablePointer<Float>, sums: UnsafeMutablePointer<Float>
    ) {
        withHead(kvHead) { query, scores, kp, vp in
            lk_attend_quantized_span(
                query, Int32(group), Int32(headDim), scale, keys, keyRecord, kp.baseAddress, Int32(kp.count), values,
                valueRecord, vp.baseAddress, Int32(vp.count), Int32(span), scores, output,
                Int32(positions.lowerBound), Int32(positions.count), maxima, sums)
        }
    }

    /// KV head `kvHead`'s first query head, its scores rows, and its key and value pieces.
    private func withHead(
        _ kvHead: Int,
        _ body: (
            UnsafePointer<Float>, UnsafeMutablePointer<Float>, UnsafeBufferPointer<lk_kv_piece>,
            UnsafeBufferPointer<lk_kv_piece>
        ) -> Void
    ) {
        let head = kvHead * group
        keyPieces[kvHead].withUnsafeBufferPointer { kp in
            valuePieces[kvHead].withUnsafeBufferPointer { vp in
                body(query + head * headDim, scores + head * context, kp, vp)
            }
        }
    }
}

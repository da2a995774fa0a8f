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
        let scale = 1 / Float(hd).squareRoot()
        if attentionScores.count < heads * context { attentionScores = [Float](repeating: 0, count: heads * context) }
        let keys = UnsafeSendable(keyCache.records(layer: layer).assumingMemoryBound(to: UInt8.self))
        let values = UnsafeSendable(valueCache.records(layer: layer).assumingMemoryBound(to: UInt8.self))
        let (keyRecord, valueRecord) = (Int32(keyCache.recordBytes), Int32(valueCache.recordBytes))
        let (keyPieces, valuePieces) = (keyPieces, valuePieces)
        q.withUnsafeBufferPointer { qp in
            attended.withUnsafeMutableBufferPointer { out in
                attentionScores.withUnsafeMutableBufferPointer { sp in
                    let (query, output, scores) = (
                        UnsafeSendable(qp.baseAddress!), UnsafeSendable(out.baseAddress!),
                        UnsafeSendable(sp.baseAddress!)
                    )
                    // One KV head and the query heads that read it at a time: each cached vector is
                    // dequantized once for the group.
                    pool.run(heads / groupSize) { kvHead in
                        let head = kvHead * groupSize
                        keyPieces[kvHead].withUnsafeBufferPointer { kp in
                            valuePieces[kvHead].withUnsafeBufferPointer { vp in
                                lk_attend_quantized(
                                    query.value + head * hd, Int32(groupSize), Int32(hd), scale, keys.value, keyRecord,
                                    kp.baseAddress, Int32(kp.count), values.value, valueRecord, vp.baseAddress,
                                    Int32(vp.count), Int32(span), scores.value + head * context,
                                    output.value + head * hd)
                            }
                        }
                    }
                }
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

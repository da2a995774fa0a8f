import CKernels
import Foundation
import LatheCore
import LinearAlgebra

/// The session's kernels: parallel loops, RMS norm, softmax, RoPE and the buffers they share.
extension LlamaSession {
    /// Runs `body` for 0..<count on every core when there is enough work, else inline.
    static func parallelFor(_ count: Int, pool: WorkerPool?, minimumWork: Int, _ body: @Sendable (Int) -> Void) {
        guard let pool, count >= minimumWork else {
            for i in 0..<count { body(i) }
            return
        }
        pool.forEachRange(count, parallel: true) { range in
            for i in range { body(i) }
        }
    }

    /// An array of `count` floats for a caller that writes every element before any is read (the
    /// projections, copies and norms here; the GEMMs and GEMVs that fill them run with beta = 0,
    /// which BLAS defines as not reading C): no zero fill, which was 3–4 % of a prefill's time.
    static func overwritten(_ count: Int) -> [Float] {
        // Empty: `[]`, not an uninitialized array of 0, whose initializer writes the count into the
        // one empty-array storage every thread shares (a race the thread sanitizer reports).
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
    }

    /// The three column blocks of a row-major `rows × (a + b + c)` matrix as separate matrices.
    static func splitColumns(_ m: [Float], rows: Int, widths: (Int, Int, Int)) -> ([Float], [Float], [Float]) {
        let (a, b, c) = widths
        let width = a + b + c
        var first = overwritten(rows * a)
        var second = overwritten(rows * b)
        var third = overwritten(rows * c)
        // Row by row with memcpy-speed copies (the bounds-checked element loop cost a few % of prefill).
        m.withUnsafeBufferPointer { source in
            first.withUnsafeMutableBufferPointer { p1 in
                second.withUnsafeMutableBufferPointer { p2 in
                    third.withUnsafeMutableBufferPointer { p3 in
                        for row in 0..<rows {
                            let base = source.baseAddress! + row * width
                            if a > 0 { (p1.baseAddress! + row * a).update(from: base, count: a) }
                            if b > 0 { (p2.baseAddress! + row * b).update(from: base + a, count: b) }
                            if c > 0 { (p3.baseAddress! + row * c).update(from: base + a + b, count: c) }
                        }
                    }
                }
            }
        }
        return (first, second, third)
    }

    /// `x += y`, element-wise, without bounds checks in the loop.
    static func addInPlace(_ x: inout [Float], _ y: [Float]) {
        x.withUnsafeMutableBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in
                for i in 0..<min(xp.count, yp.count) { xp[i] += yp[i] }
            }
        }
    }

    /// Output columns per GEMM when a projection of `out` columns runs over many tokens. Fixed by the
    /// shape, not derived from the
    /// thread count: every output element then comes from the same BLAS call shape whatever the
    /// threads, so results are identical across thread counts, and the packed path (tiles of the
    /// same width, dequantized) is bit-identical to the F32 one. That matters: with 4-bit
    /// activations one rounding flip moves a quantization step, and flips compound over layers.
    /// (One GEMM per worker over a run of tiles would pack the activations fewer times, but
    /// OpenBLAS's sums then change with the run's width: tried, a W4A4 model's F32 and packed paths
    /// parted by a mean KL of 0.29 and their perplexities by 6 %.)
    static func tileColumns(_ out: Int) -> Int {
        // Six tiles per matrix (a multiple of 16 columns, at least 96): whole tiles for 1, 2 or 3
        // workers, few enough that each GEMM call's packing of the activations is amortised.
        max(96, ((out + 5) / 6 + 15) / 16 * 16)
    }

    /// The base addresses of two inputs and an output, wrapped for workers that touch disjoint parts.
    static func withSendablePointers(
        _ a: [Float], _ b: [Float], _ c: inout [Float],
        _ body: (
            UnsafeSendable<UnsafePointer<Float>>, UnsafeSendable<UnsafePointer<Float>>,
            UnsafeSendable<UnsafeMutablePointer<Float>>
        ) -> Void
    ) {
        guard !a.isEmpty, !b.isEmpty, !c.isEmpty else { return }
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    body(
                        UnsafeSendable(ap.baseAddress!), UnsafeSendable(bp.baseAddress!),
                        UnsafeSendable(cp.baseAddress!))
                }
            }
        }
    }

    /// RMSNorm per row: x / √(mean(x²) + ε) · w, the mean accumulated in double as ggml does; rows
    /// spread over `threads` when there are enough of them.
    static func rmsNorm(_ x: [Float], _ weight: [Float], rows: Int, epsilon: Double, pool: WorkerPool? = nil)
        -> [Float]
    {
        let width = weight.count
        var y = overwritten(x.count)
        withSendablePointers(x, weight, &y) { source, gamma, out in
            parallelFor(rows, pool: pool, minimumWork: 64) { row in
                let input = source.value + row * width
                var sum = 0.0
                for j in 0..<width { sum += Double(input[j] * input[j]) }
                let scale = 1 / (Float(sum / Double(width)) + Float(epsilon)).squareRoot()
                for j in 0..<width { out.value[row * width + j] = input[j] * scale * gamma.value[j] }
            }
        }
        return y
    }

    /// Softmax of one score row over its first `visible` entries; the rest (future tokens) become 0.
    /// SIMD (`lk_softmax`): scalar expf calls were a tenth of a long prompt's prefill.
    static func causalSoftmax(_ row: UnsafeMutablePointer<Float>, visible: Int, width: Int) {
        lk_softmax(row, Int32(visible))
        if visible < width { (row + visible).update(repeating: 0, count: width - visible) }
    }

    /// Rotates each head of each row by its absolute position, pairing dimensions as the weights expect.
    func applyRope(_ x: inout [Float], rows: Int, heads: Int) {
        let hd = config.headDim
        let half = hd / 2
        let interleaved = weights.ropeStyle == .interleaved
        let position = position
        cosTable.withUnsafeBufferPointer { cp in
            sinTable.withUnsafeBufferPointer { sp in
                x.withUnsafeMutableBufferPointer { xp in
                    let (cosines, sines, values) = (
                        UnsafeSendable(cp.baseAddress!), UnsafeSendable(sp.baseAddress!),
                        UnsafeSendable(xp.baseAddress!)
                    )
                    Self.parallelFor(rows, pool: pool, minimumWork: 64) { row in
                        let table = (position + row) * half
                        for head in 0..<heads {
                            let base = (row * heads + head) * hd
                            for i in 0..<half {
                                let (a, b) =
                                    interleaved ? (base + 2 * i, base + 2 * i + 1) : (base + i, base + i + half)
                                let (c, s) = (cosines.value[table + i], sines.value[table + i])
                                let (x0, x1) = (values.value[a], values.value[b])
                                values.value[a] = x0 * c - x1 * s
                                values.value[b] = x0 * s + x1 * c
                            }
                        }
                    }
                }
            }
        }
    }

    /// cos/sin of position · θᵢ for every position and frequency, θᵢ = base^(−2i/d) adjusted by the
    /// configured RoPE scaling.
    /// `divisors` (a GGUF's `rope_freqs.weight`, from llama.cpp's converter) stand in for a llama3
    /// scaling the config does not describe.
    static func ropeTables(_ config: LlamaConfig, maxContext: Int, divisors: [Float]? = nil) -> ([Float], [Float]) {
        let half = config.headDim / 2
        var frequencies = (0..<half).map { pow(config.ropeBase, -2 * Double($0) / Double(config.headDim)) }
        if let scaling = config.ropeScaling, scaling.type == "linear" {
            frequencies = frequencies.map { $0 / scaling.factor }
        } else if let divisors = config.ropeScaling?.frequencyDivisors(headDim: config.headDim, base: config.ropeBase)
            ?? divisors.map({ $0.map(Double.init) }), divisors.count == half
        {
            frequencies = zip(frequencies, divisors).map { $0 / $1 }
        }
        var cosines = [Float](repeating: 0, count: maxContext * half)
        var sines = cosines
        for position in 0..<maxContext {
            for i in 0..<half {
                let angle = Double(position) * frequencies[i]
                cosines[position * half + i] = Float(cos(angle))
                sines[position * half + i] = Float(sin(angle))
            }
        }
        return (cosines, sines)
    }
}

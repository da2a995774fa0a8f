import CKernels
import Dispatch
import LatheCore
import LinearAlgebra

/// A projection's weight `[out, in]` as the forward pass runs it: F32 values for BLAS, or packed
/// integer codes run by the low-bit kernels.
public enum LinearWeight: Sendable {
    case dense([Float])
    case packed(PackedMatrix)
    /// An F16 matrix read in place (a 16-bit output head), converted in registers.
    case half(HalfMatrix)

    /// Bytes the weight occupies in memory.
    public var byteCount: Int {
        switch self {
        case .dense(let values): 4 * values.count
        case .packed(let matrix): matrix.byteCount
        case .half(let matrix): 2 * matrix.rows * matrix.columns
        }
    }

    public var isPacked: Bool {
        if case .packed = self { return true }
        return false
    }

    /// The weight as F32 values (decoded for packed ones).
    public func decoded() -> [Float] {
        switch self {
        case .dense(let values): return values
        case .packed(let matrix):
            var out = [Float](repeating: 0, count: matrix.rows * matrix.columns)
            out.withUnsafeMutableBufferPointer { matrix.dequantize(rows: 0..<matrix.rows, into: $0.baseAddress!) }
            return out
        case .half(let matrix):
            var out = [Float](repeating: 0, count: matrix.rows * matrix.columns)
            out.withUnsafeMutableBufferPointer { matrix.convert(rows: 0..<matrix.rows, into: $0.baseAddress!) }
            return out
        }
    }

    /// Stacks tensors that read the same input (q, k, v) into one weight: packed when every part is
    /// packed with one encoding and `lowBit` allows it, F32 otherwise.
    static func stacked(_ tensors: [Tensor], lowBit: Bool) throws -> LinearWeight {
        let encodings = tensors.compactMap { tensor -> PackedIntegerEncoding? in
            guard case .quantized(.packed(let encoding)) = tensor.info.dtype else { return nil }
            return encoding
        }
        if lowBit, encodings.count == tensors.count, let first = encodings.first, encodings.allSatisfy({ $0 == first })
        {
            let parts = try tensors.map { (try $0.storage(), $0.info.shape.dimensions.first ?? 0) }
            return .packed(try PackedMatrix(parts, encoding: first))
        }
        if lowBit, tensors.count == 1, let tensor = tensors.first, tensor.info.dtype == .f16,
            tensor.info.shape.rank == 2
        {
            let dimensions = tensor.info.shape.dimensions
            return .half(HalfMatrix(storage: try tensor.storage(), rows: dimensions[0], columns: dimensions[1]))
        }
        return .dense(try tensors.flatMap { try TensorCodec.decodeReleasingPages($0) })
    }
}

/// Scratch the packed path reuses across calls: a dequantized tile of weights for prefill and the
/// activation codes for decoding. `@unchecked Sendable`: it belongs to one `LlamaSession`, which
/// runs one call at a time; within a call the worker threads only write disjoint slices of the
/// buffers the calling thread sized before starting them.
final class PackedScratch: @unchecked Sendable {
    var tile: [Float] = []
    var activations: [String: QuantizedActivation] = [:]
    /// Each packed matrix's segments paired with a site's activation parts (nil: float path).
    var plans: [ObjectIdentifier: [lk_segment]?] = [:]
    /// An activation row laid out for the kernels, as codes or floats.
    let expandedCodes = ScratchBuffer<UInt8>(filling: 0)
    let expandedFloats = ScratchBuffer<Float>(filling: 0)
    /// Its sums per segment (codes) and per slot (floats), which weight zero points multiply
    /// (unused without them).
    let codeSums = ScratchBuffer<Int32>(filling: 0)
    let floatSums = ScratchBuffer<Float>(filling: 0)
    /// A prompt's activations as codes for the integer GEMM: expanded codes, part scales and zero
    /// points per token, and which tokens the quantizer declined.
    let promptCodes = ScratchBuffer<UInt8>(filling: 0)
    let promptScales = ScratchBuffer<Float>(filling: 0)
    let promptZeros = ScratchBuffer<Float>(filling: 0)
    let promptDeclined = ScratchBuffer<UInt8>(filling: 0)
}

extension LlamaSession {
    /// Tokens at or below which a packed weight runs as GEMVs on the codes; above it, tiles of the
    /// weight are dequantized and multiplied by BLAS, where the decoding cost vanishes.
    static let packedGEMVLimit = 4

    /// `x · Wᵀ` for `rows` rows of `x` (`rows × in`), with the activation quantizer of this site
    /// applied to x first (in place for the float path, as codes for the integer one).
    func project(
        _ x: inout [Float], rows: Int, _ w: LinearWeight, out: Int, in: Int, quantizer: ActivationQuantizer?,
        site: String
    ) -> [Float] {
        var y = Self.overwritten(rows * out)
        switch w {
        case .dense(let values):
            quantize(&x, quantizer, rows: rows)
            multiply(x, rows: rows, values, out: out, in: `in`, into: &y)
        case .half(let matrix):
            quantize(&x, quantizer, rows: rows)
            halfProduct(x, rows: rows, matrix, into: &y)
        case .packed(let matrix):
            if rows <= Self.packedGEMVLimit {
                packedGEMV(&x, rows: rows, matrix, quantizer: quantizer, site: site, into: &y)
            } else if integerPrompts, let quantizer, !matrix.encoding.zeroPoints,
                let plan = integerPlan(matrix, quantizer)
            {
                packedIntegerGEMM(x, rows: rows, matrix, quantizer: quantizer, plan: plan, site: site, into: &y)
            } else {
                quantize(&x, quantizer, rows: rows)
                packedGEMM(x, rows: rows, matrix, into: &y)
            }
        }
        return y
    }

    /// Token by token: integer kernels when the quantizer's parts line up with the segments, the
    /// float kernels on the quantized values otherwise. The activation row is laid out once for the
    /// kernels (`lk_expand_*`) and shared by every row of the matrix.
    private func packedGEMV(
        _ x: inout [Float], rows: Int, _ matrix: PackedMatrix, quantizer: ActivationQuantizer?, site: String,
        into y: inout [Float]
    ) {
        let (n, k) = (matrix.rows, matrix.columns)
        let plan = quantizer.flatMap { integerPlan(matrix, $0) }
        scratch.expandedCodes.reserve(matrix.expandedCount)
        scratch.expandedFloats.reserve(matrix.expandedCount)
        scratch.codeSums.reserve(matrix.kernelSegments.count)
        scratch.floatSums.reserve(matrix.encoding.slotCount)
        let (codes, floats) = (scratch.expandedCodes.base, scratch.expandedFloats.base)
        let (codeSums, floatSums) = (scratch.codeSums.base, scratch.floatSums.base)
        let zeroPoints = matrix.encoding.zeroPoints
        for row in 0..<rows {
            var activation: QuantizedActivation?
            if let quantizer, let plan {
                let quantized = scratch.activations[site] ?? QuantizedActivation(quantizer, width: k)
                scratch.activations[site] = quantized
                if x.withUnsafeBufferPointer({ quantized.load($0.baseAddress! + row * k) }) {
                    activation = quantized
                    plan.withUnsafeBufferPointer { segments in
                        let (first, count) = (segments.baseAddress!, Int32(segments.count))
                        lk_expand_u8(quantized.codes, first, count, codes)
                        if zeroPoints { lk_segment_sums_u8(codes, first, count, codeSums) }
                    }
                }
            }
            if activation == nil {
                if let quantizer {
                    x.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress! + row * k, rows: 1, width: k) }
                }
                x.withUnsafeBufferPointer { xp in
                    matrix.kernelSegments.withUnsafeBufferPointer { segments in
                        let (first, count) = (segments.baseAddress!, Int32(segments.count))
                        lk_expand_f32(xp.baseAddress! + row * k, first, count, floats)
                        if zeroPoints {
                            lk_slot_sums_f32(floats, first, count, Int32(matrix.encoding.slotCount), floatSums)
                        }
                    }
                }
            }
            let (integer, planned) = (activation.map { UnsafeSendable($0) }, plan ?? [])
            let buffers = UnsafeSendable((codes, floats, codeSums, floatSums))
            y.withUnsafeMutableBufferPointer { yp in
                let output = UnsafeSendable(yp.baseAddress! + row * n)
                pool.forEachRange(n, parallel: n * k >= 1 << 16) { range in
                    let (codes, floats, codeSums, floatSums) = buffers.value
                    if let integer {
                        matrix.gemv(
                            integer.value, expanded: codes, sums: codeSums, plan: planned, rows: range,
                            into: output.value)
                    } else {
                        matrix.gemv(expanded: floats, sums: floatSums, rows: range, into: output.value)
                    }
                }
            }
        }
    }

    /// `matrix.integerPlan(quantizer)`, worked out once per matrix (a matrix has one input site).
    private func integerPlan(_ matrix: PackedMatrix, _ quantizer: ActivationQuantizer) -> [lk_segment]? {
        let key = ObjectIdentifier(matrix)
        if let cached = scratch.plans[key] { return cached }
        let plan = matrix.integerPlan(quantizer)
        scratch.plans[key] = .some(plan)
        return plan
    }

    /// Many tokens with quantized activations: every token's codes laid out once, then one integer
    /// GEMM over row ranges, which gives each token the bits the token-by-token path gives it. A
    /// token the quantizer declines (a NaN, a part without a step) goes through that path after.
    private func packedIntegerGEMM(
        _ x: [Float], rows tokens: Int, _ matrix: PackedMatrix, quantizer: ActivationQuantizer,
        plan: [lk_segment], site: String, into y: inout [Float]
    ) {
        let (n, k, stride) = (matrix.rows, matrix.columns, matrix.expandedCount)
        let parts = quantizer.parts(width: k)
        scratch.promptCodes.reserve(tokens * stride)
        scratch.promptScales.reserve(tokens * parts.count)
        scratch.promptZeros.reserve(tokens * parts.count)
        scratch.promptDeclined.reserve(tokens)
        let buffers = UnsafeSendable(
            (scratch.promptCodes.base, scratch.promptScales.base, scratch.promptZeros.base, scratch.promptDeclined.base)
        )
        x.withUnsafeBufferPointer { xp in
            let input = UnsafeSendable(xp.baseAddress!)
            pool.forEachRange(tokens, parallel: tokens >= 16) { range in
                let (codes, scales, zeros, declined) = buffers.value
                withUnsafeTemporaryAllocation(of: UInt8.self, capacity: k) { row in
                    for t in range {
                        var quantized = true
                        for (index, part) in parts.enumerated() where quantized {
                            quantized = QuantizedActivation.quantize(
                                input.value + t * k, part: part, quantizer, codes: row.baseAddress!,
                                scale: scales + t * parts.count + index, zero: zeros + t * parts.count + index)
                        }
                        declined[t] = quantized ? 0 : 1
                        if !quantized {
                            // Codes the GEMM can read; the token's outputs are replaced below.
                            row.initialize(repeating: 0)
                            (scales + t * parts.count).update(repeating: 0, count: parts.count)
                            (zeros + t * parts.count).update(repeating: 0, count: parts.count)
                        }
                        plan.withUnsafeBufferPointer {
                            lk_expand_u8(row.baseAddress!, $0.baseAddress!, Int32($0.count), codes + t * stride)
                        }
                    }
                }
            }
        }
        y.withUnsafeMutableBufferPointer { yp in
            let output = UnsafeSendable(yp.baseAddress!)
            pool.forEachRange(n, parallel: n * k >= 1 << 16) { range in
                let (codes, scales, zeros, _) = buffers.value
                matrix.gemm(
                    codes: codes, stride: stride, tokens: tokens, scales: scales, zeros: zeros,
                    partStride: parts.count, plan: plan, rows: range, into: output.value, ldy: n)
            }
        }
        let declined = scratch.promptDeclined.base
        for t in 0..<tokens where declined[t] != 0 {
            var row = Array(x[(t * k)..<((t + 1) * k)])
            var out = [Float](repeating: 0, count: n)
            packedGEMV(&row, rows: 1, matrix, quantizer: quantizer, site: site, into: &out)
            y.replaceSubrange((t * n)..<((t + 1) * n), with: out)
        }
    }

    /// Many tokens: tiles of rows decoded into scratch, each multiplied by BLAS exactly as the F32
    /// path multiplies the same rows.
    private func packedGEMM(_ x: [Float], rows: Int, _ matrix: PackedMatrix, into y: inout [Float]) {
        tiledProduct(x, rows: rows, out: matrix.rows, in: matrix.columns, into: &y, decodes: true) { range, buffer in
            matrix.dequantize(rows: range, into: buffer!)
            return UnsafePointer(buffer!)
        }
    }

    /// `y = x · Wᵀ` for F32 weights. Many rows: GEMMs over tiles of output columns; a few rows
    /// (decoding): GEMVs over row ranges of W, one per worker.
    func multiply(_ x: [Float], rows: Int, _ w: [Float], out: Int, in k: Int, into y: inout [Float]) {
        guard !x.isEmpty, !w.isEmpty, !y.isEmpty else {
            // An empty input dimension: the product is zero (y arrives unfilled, `overwritten`).
            for i in y.indices { y[i] = 0 }
            return
        }
        w.withUnsafeBufferPointer { wp in
            let weights = UnsafeSendable(wp.baseAddress!)
            guard rows <= Self.packedGEMVLimit else {
                tiledProduct(x, rows: rows, out: out, in: k, into: &y, decodes: false) { range, _ in
                    weights.value + range.lowerBound * k
                }
                return
            }
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    let (input, output) = (UnsafeSendable(xp.baseAddress!), UnsafeSendable(yp.baseAddress!))
                    pool.forEachRange(out, parallel: out * k >= 1 << 16) { range in
                        for row in 0..<rows {
                            BLAS.gemv(
                                rows: range.count, columns: k, a: weights.value + range.lowerBound * k, lda: k,
                                x: input.value + row * k, y: output.value + row * out + range.lowerBound)
                        }
                    }
                }
            }
        }
    }

    /// `y = x · Wᵀ` for many rows in tiles of output columns fixed by the shape (`tileColumns`), dealt
    /// to the workers, each one GEMM. `tile(range, scratch)` gives the F32 rows of W in `range`: in
    /// place, or decoded into `scratch` (a buffer per worker, present when `decodes`). Every encoding
    /// goes through here, so a packed or F16 matrix multiplies exactly as its F32 decoding does.
    func tiledProduct(
        _ x: [Float], rows: Int, out n: Int, in k: Int, into y: inout [Float], decodes: Bool,
        tile: (Range<Int>, UnsafeMutablePointer<Float>?) -> UnsafePointer<Float>
    ) {
        let tileRows = Self.tileColumns(n)
        let tiles = (n + tileRows - 1) / tileRows
        let workers = n * k >= 1 << 16 ? min(threads, tiles) : 1
        if decodes, scratch.tile.count < workers * tileRows * k {
            scratch.tile = [Float](repeating: 0, count: workers * tileRows * k)
        }
        scratch.tile.withUnsafeMutableBufferPointer { tp in
            x.withUnsafeBufferPointer { xp in
                y.withUnsafeMutableBufferPointer { yp in
                    let (input, output) = (UnsafeSendable(xp.baseAddress!), UnsafeSendable(yp.baseAddress!))
                    let buffers = UnsafeSendable(tp.baseAddress)
                    func run(_ worker: Int) {
                        let buffer = decodes ? buffers.value.map { $0 + worker * tileRows * k } : nil
                        for t in stride(from: worker, to: tiles, by: workers) {
                            let first = t * tileRows
                            let count = min(tileRows, n - first)
                            BLAS.gemm(
                                transB: .transposed, m: rows, n: count, k: k, a: input.value, lda: k,
                                b: tile(first..<(first + count), buffer), ldb: k, c: output.value + first, ldc: n)
                        }
                    }
                    pool.run(workers, run)
                }
            }
        }
    }
}

/// A row-major F16 matrix in its tensor's bytes. `@unchecked Sendable`: immutable after `init`;
/// the pointer reads bytes that `storage` keeps alive and that nothing writes.
public final class HalfMatrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    private let storage: TensorStorage
    private let base: UnsafePointer<UInt16>

    init(storage: TensorStorage, rows: Int, columns: Int) {
        self.storage = storage
        self.rows = rows
        self.columns = columns
        base = storage.baseAddress!.assumingMemoryBound(to: UInt16.self)
    }

    /// Rows `range` as floats into `out`.
    func convert(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        lk_f16_to_f32(base + range.lowerBound * columns, out, Int32(range.count * columns))
    }

    func gemv(_ x: UnsafePointer<Float>, rows range: Range<Int>, into y: UnsafeMutablePointer<Float>) {
        lk_gemv_f16(base + range.lowerBound * columns, Int32(range.count), Int32(columns), x, y + range.lowerBound)
    }
}

extension LlamaSession {
    /// An F16 weight: GEMVs converting in registers for a few rows; for many, tiles converted and
    /// multiplied exactly as the F32 path multiplies the same rows.
    fileprivate func halfProduct(_ x: [Float], rows: Int, _ matrix: HalfMatrix, into y: inout [Float]) {
        guard rows <= Self.packedGEMVLimit else {
            tiledProduct(x, rows: rows, out: matrix.rows, in: matrix.columns, into: &y, decodes: true) {
                range, buffer in
                matrix.convert(rows: range, into: buffer!)
                return UnsafePointer(buffer!)
            }
            return
        }
        let (n, k) = (matrix.rows, matrix.columns)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                let (input, output) = (UnsafeSendable(xp.baseAddress!), UnsafeSendable(yp.baseAddress!))
                pool.forEachRange(n, parallel: true) { range in
                    for row in 0..<rows {
                        matrix.gemv(input.value + row * k, rows: range, into: output.value + row * n)
                    }
                }
            }
        }
    }
}

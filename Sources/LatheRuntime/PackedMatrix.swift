import CKernels
import Dispatch
import LatheCore

/// A weight matrix `[rows, columns]` in the packed integer encoding, read in place from its
/// tensors' bytes (a mapped file stays mapped). Several tensors with one encoding (q, k and v) can
/// stand stacked as one matrix: their rows follow each other. `@unchecked Sendable`: immutable after
/// `init`; its pointers read bytes it owns or that `storages` keep alive, freed only in `deinit`.
public final class PackedMatrix: @unchecked Sendable {
    public let encoding: PackedIntegerEncoding
    public let rows: Int
    public var columns: Int { encoding.rowLength }
    /// Keeps the bytes alive (and mapped) for the pointers below.
    private let storages: [TensorStorage]
    /// The last row of each part, copied with 64 bytes of slack: the kernels read whole 32-byte
    /// blocks, up to 31 bytes past a short segment's codes, which must not run off a buffer.
    private let paddedRows: [UnsafeMutableRawPointer]
    /// The start of each row (its scales and zero points, then its codes).
    private let rowStarts: [UnsafePointer<UInt8>?]
    /// Σ q over each (row, segment): the zero-point term of an asymmetric activation.
    private let codeSums: [Int32]
    /// The segments as the kernels take them.
    let kernelSegments: [lk_segment]
    /// Elements of an activation row laid out for the kernels (`lk_expand_*`).
    let expandedCount: Int

    deinit { for row in paddedRows { row.deallocate() } }

    public init(_ parts: [(storage: TensorStorage, rows: Int)], encoding: PackedIntegerEncoding) throws {
        self.encoding = encoding
        storages = parts.map(\.storage)
        var starts: [UnsafePointer<UInt8>?] = []
        var padded: [UnsafeMutableRawPointer] = []
        for part in parts {
            guard part.storage.byteCount == encoding.byteCount(rows: part.rows) else {
                throw LatheError.invalidValue(
                    field: "packed payload", value: "\(part.storage.byteCount) bytes",
                    expected: "\(encoding.byteCount(rows: part.rows)) for \(part.rows) rows of \(encoding)")
            }
            guard part.rows > 0, let base = part.storage.baseAddress else { continue }
            let bytes = base.assumingMemoryBound(to: UInt8.self)
            for r in 0..<(part.rows - 1) { starts.append(bytes + r * encoding.rowStride) }
            let copy = UnsafeMutableRawPointer.allocate(byteCount: encoding.rowStride + 64, alignment: 64)
            copy.initializeMemory(as: UInt8.self, repeating: 0, count: encoding.rowStride + 64)
            copy.copyMemory(from: bytes + (part.rows - 1) * encoding.rowStride, byteCount: encoding.rowStride)
            padded.append(copy)
            starts.append(UnsafePointer(copy.assumingMemoryBound(to: UInt8.self)))
        }
        rows = starts.count
        rowStarts = starts
        paddedRows = padded
        var sums = [Int32](repeating: 0, count: rows * encoding.segments.count)
        let segments = encoding.segments
        let (offsets, slotBytes) = (encoding.segmentOffsets, encoding.headerBytes)
        for r in 0..<rows {
            for (s, segment) in segments.enumerated() {
                let codes = UnsafeRawPointer(rowStarts[r]!) + slotBytes + offsets[s]
                sums[r * segments.count + s] =
                    segment.bits == 4
                    ? lk_sum_q4(codes.assumingMemoryBound(to: UInt8.self), Int32(segment.count))
                    : lk_sum_q8(codes.assumingMemoryBound(to: Int8.self), Int32(segment.count))
            }
        }
        codeSums = sums
        var expanded: Int32 = 0
        kernelSegments = zip(segments, offsets).map { segment, offset in
            var kernel = lk_segment(
                start: Int32(segment.start), count: Int32(segment.count), bits: Int32(segment.bits),
                slot: Int32(segment.slot), offset: Int32(offset), part: -1, expanded: expanded)
            expanded += lk_expanded_count(&kernel)
            return kernel
        }
        expandedCount = Int(expanded)
    }

    /// Bytes of weights, scales and zero points.
    public var byteCount: Int { rows * encoding.rowStride }

    /// The rows' layout as the kernels take it.
    var kernelLayout: lk_rows {
        lk_rows(
            slots: Int32(encoding.slotCount), zero_points: encoding.zeroPoints ? 1 : 0,
            half_scales: encoding.halfScales ? 1 : 0)
    }

    /// Rows `range` decoded to floats into `out` (`range.count × columns`).
    public func dequantize(rows range: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        rowStarts.withUnsafeBufferPointer { starts in
            kernelSegments.withUnsafeBufferPointer { segments in
                lk_dequant_rows(
                    starts.baseAddress! + range.lowerBound, Int32(range.count), segments.baseAddress!,
                    Int32(segments.count), kernelLayout, Int32(columns), out)
            }
        }
    }

    /// `y[r] = Σ W[r, c] · x[c]` for rows `range`, x in floats laid out by `lk_expand_f32` over
    /// `kernelSegments`, `sums` its slot sums (`lk_slot_sums_f32`; read only with zero points).
    func gemv(
        expanded x: UnsafePointer<Float>, sums: UnsafePointer<Float>, rows range: Range<Int>,
        into y: UnsafeMutablePointer<Float>
    ) {
        rowStarts.withUnsafeBufferPointer { starts in
            kernelSegments.withUnsafeBufferPointer { segments in
                lk_gemv_packed_f32(
                    starts.baseAddress! + range.lowerBound, Int32(range.count), segments.baseAddress!,
                    Int32(segments.count), kernelLayout, x, sums, y + range.lowerBound)
            }
        }
    }

    /// The same product with x quantized: integer dot products of the weight codes with the
    /// activation codes (`expanded` by `lk_expand_u8` over `plan`, `sums` their segment sums), then
    /// `s_w · s_a · (Σ q·a − z_a · Σ q − z_w · (Σ a − z_a · n))` per segment. `plan` is this matrix's
    /// segments with their activation parts (`integerPlan`).
    func gemv(
        _ x: QuantizedActivation, expanded: UnsafePointer<UInt8>, sums: UnsafePointer<Int32>, plan: [lk_segment],
        rows range: Range<Int>, into y: UnsafeMutablePointer<Float>
    ) {
        rowStarts.withUnsafeBufferPointer { starts in
            plan.withUnsafeBufferPointer { segments in
                codeSums.withUnsafeBufferPointer { codeSums in
                    x.scales.withUnsafeBufferPointer { scales in
                        x.zeros.withUnsafeBufferPointer { zeros in
                            lk_gemv_packed_u8(
                                starts.baseAddress! + range.lowerBound, Int32(range.count), segments.baseAddress!,
                                Int32(segments.count), kernelLayout,
                                codeSums.baseAddress! + range.lowerBound * segments.count, expanded, sums,
                                scales.baseAddress!,
                                zeros.baseAddress!, y + range.lowerBound)
                        }
                    }
                }
            }
        }
    }

    /// `gemv(_:expanded:sums:plan:rows:into:)` for `tokens` tokens at once: token t's expanded codes
    /// at `codes + t · stride`, its part scales and zero points at `t · partStride`; y[t · ldy + r].
    /// Each token gets the bits the one-token product gives it. Rows without zero points only.
    func gemm(
        codes: UnsafePointer<UInt8>, stride: Int, tokens: Int, scales: UnsafePointer<Float>,
        zeros: UnsafePointer<Float>, partStride: Int, plan: [lk_segment], rows range: Range<Int>,
        into y: UnsafeMutablePointer<Float>, ldy: Int
    ) {
        precondition(!encoding.zeroPoints, "the integer GEMM takes rows without weight zero points")
        rowStarts.withUnsafeBufferPointer { starts in
            plan.withUnsafeBufferPointer { segments in
                codeSums.withUnsafeBufferPointer { codeSums in
                    _ = lk_gemm_packed_u8(
                        starts.baseAddress! + range.lowerBound, Int32(range.count), segments.baseAddress!,
                        Int32(segments.count), kernelLayout,
                        codeSums.baseAddress! + range.lowerBound * segments.count, codes, Int32(stride),
                        Int32(tokens), scales, zeros, Int32(partStride), y + range.lowerBound, Int32(ldy))
                }
            }
        }
    }

    /// For each segment, the activation part that holds it whole, when `quantizer` allows the integer
    /// path on this matrix (codes of at most 8 bits, parts aligned with segments); nil otherwise.
    func integerPlan(_ quantizer: ActivationQuantizer) -> [lk_segment]? {
        let parts = quantizer.parts(width: columns)
        guard quantizer.bits <= 8, quantizer.highBits <= 8 else { return nil }
        var plan = kernelSegments
        for (s, segment) in encoding.segments.enumerated() {
            guard
                let index = parts.firstIndex(where: {
                    $0.start <= segment.start && segment.start + segment.count <= $0.start + $0.count
                })
            else { return nil }
            plan[s].part = Int32(index)
        }
        return plan
    }
}

/// One row of activations quantized as `ActivationQuantizer` does it, kept as codes: per part an
/// unsigned code per value, a scale and an integer zero point (values = scale · (code − zero)).
final class QuantizedActivation {
    let codes: UnsafeMutablePointer<UInt8>
    private(set) var scales: [Float]
    private(set) var zeros: [Float]
    let parts: [ActivationQuantizer.Part]

    init(_ quantizer: ActivationQuantizer, width: Int) {
        parts = quantizer.parts(width: width)
        codes = .allocate(capacity: width)
        scales = [Float](repeating: 0, count: parts.count)
        zeros = scales
        self.quantizer = quantizer
    }

    deinit { codes.deallocate() }

    private let quantizer: ActivationQuantizer

    /// Quantizes `x` exactly as `UniformQuantizer.asymmetric`; false when a part is one the fake
    /// quantizer leaves as it is (a degenerate range), which the caller then runs in floats.
    func load(_ x: UnsafePointer<Float>) -> Bool {
        (0..<parts.count).allSatisfy { load(x, part: $0) }
    }

    /// One part; false when the fake quantizer would leave it as it is.
    func load(_ x: UnsafePointer<Float>, part index: Int) -> Bool {
        var scale: Float = 0
        var zero: Float = 0
        guard Self.quantize(x, part: parts[index], quantizer, codes: codes, scale: &scale, zero: &zero) else {
            return false
        }
        scales[index] = scale
        zeros[index] = zero
        return true
    }

    /// The step every row of codes is made by: `part` of the row `x` quantized by `quantizer` into
    /// `codes` (at the part's columns), its scale and zero point; false when the fake quantizer would
    /// leave the part as it is.
    static func quantize(
        _ x: UnsafePointer<Float>, part: ActivationQuantizer.Part, _ quantizer: ActivationQuantizer,
        codes: UnsafeMutablePointer<UInt8>, scale: UnsafeMutablePointer<Float>, zero: UnsafeMutablePointer<Float>
    ) -> Bool {
        lk_quantize_asymmetric(
            x + part.start, Int32(part.count), Int32(part.bits), quantizer.includeZero ? 1 : 0, quantizer.clip,
            codes + part.start, scale, zero) != 0
    }
}

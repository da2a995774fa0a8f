import LatheCore

// Random packed integer encodings and values on their grids, for the packed-format and pack-weights tests.

/// A reproducible source of test data (SplitMix64).
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64

    public init(state: UInt64) { self.state = state }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Segments of random lengths (1…80 columns) and widths; a segment shares a slot with an earlier one of the
/// same width or opens a new one.
public func randomEncoding(
    rowLength: Int, zeroPoints: Bool = false, halfScales: Bool = false, using generator: inout SplitMix64
) throws -> PackedIntegerEncoding {
    var segments: [PackedIntegerEncoding.Segment] = []
    var slotBits: [Int] = []
    var start = 0
    while start < rowLength {
        let count = min(rowLength - start, Int.random(in: 1...80, using: &generator))
        let bits = Bool.random(using: &generator) ? 4 : 8
        let candidates = slotBits.indices.filter { slotBits[$0] == bits }
        let slot: Int
        if let shared = candidates.randomElement(using: &generator), Bool.random(using: &generator) {
            slot = shared
        } else {
            slot = slotBits.count
            slotBits.append(bits)
        }
        segments.append(.init(start: start, count: count, bits: bits, slot: slot))
        start += count
    }
    return try PackedIntegerEncoding(
        segments: segments, slotCount: slotBits.count, zeroPoints: zeroPoints, halfScales: halfScales)
}

/// `rows × rowLength` values exactly on the encoding's grid: Float(q) · scale with random in-range codes and
/// one random scale per row and slot; with zero points Float(u − z) · scale, u unsigned and one random z per
/// row and slot; with F16 scales, scales that F16 holds.
public func onGrid(_ encoding: PackedIntegerEncoding, rows: Int, using generator: inout SplitMix64) -> [Float] {
    var values = [Float](repeating: 0, count: rows * encoding.rowLength)
    for r in 0..<rows {
        let scales = (0..<encoding.slotCount).map { _ in
            let scale = Float.random(in: 0.001...2, using: &generator)
            return encoding.halfScales ? Float(Float16(scale)) : scale
        }
        let zeros = (0..<encoding.slotCount).map { _ in Int.random(in: 0...255, using: &generator) }
        for segment in encoding.segments {
            let limit = 1 << (segment.bits - 1)
            let zero = zeros[segment.slot] % (2 * limit)
            for c in segment.start..<(segment.start + segment.count) {
                let q = Int.random(in: -limit...(limit - 1), using: &generator)
                let k = encoding.zeroPoints ? q + limit - zero : q
                values[r * encoding.rowLength + c] = Float(k) * scales[segment.slot]
            }
        }
    }
    return values
}

/// The rows `payload` holds under `encoding`, decoded (NaN where nothing was written).
public func decode(_ payload: [UInt8], _ encoding: PackedIntegerEncoding, rows: Int) -> [Float] {
    var output = [Float](repeating: .nan, count: rows * encoding.rowLength)
    payload.withUnsafeBytes { raw in
        output.withUnsafeMutableBufferPointer { encoding.decode(raw, rows: rows, into: $0) }
    }
    return output
}

import CKernels
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

@testable import LatheRuntime

/// Random packed matrices: segments of assorted widths (4 and 8 bit, shorter and longer than a
/// 64-column nibble block, odd lengths), values exactly code · scale.
func randomPacked(rows: Int, segments widths: [(Int, Int)], seed: UInt64) throws -> (PackedIntegerEncoding, [Float]) {
    var generator = SeededGenerator(seed: seed)
    var segments: [PackedIntegerEncoding.Segment] = []
    var start = 0
    for (index, (count, bits)) in widths.enumerated() {
        segments.append(.init(start: start, count: count, bits: bits, slot: index % 2))
        start += count
    }
    let encoding = try PackedIntegerEncoding(segments: segments, slotCount: min(2, widths.count))
    var values = [Float](repeating: 0, count: rows * start)
    for r in 0..<rows {
        let scales = (0..<2).map { _ in Float(0.01 + abs(generator.nextGaussian()) * 0.02) }
        for segment in segments {
            let top = segment.bits == 4 ? 8 : 128
            for c in segment.start..<(segment.start + segment.count) {
                let q = Int(generator.next() % UInt64(2 * top)) - top
                values[r * start + c] = Float(q) * scales[segment.slot]
            }
        }
    }
    return (encoding, values)
}

@Suite("Low-bit kernels against the simulated (decoded F32) path")
struct PackedKernelTests {
    static let shapes: [[(Int, Int)]] = [
        [(504, 4), (72, 8)], [(7, 4), (1, 8)], [(63, 4)], [(64, 4)], [(65, 4), (3, 8)], [(130, 4), (17, 8), (56, 4)],
        [(1536, 4)],
    ]

    func matrix(_ widths: [(Int, Int)], rows: Int = 37, seed: UInt64) throws -> (PackedMatrix, [Float]) {
        let (encoding, values) = try randomPacked(rows: rows, segments: widths, seed: seed)
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: rows) })
        return (try PackedMatrix([(TensorStorage(bytes: payload), rows)], encoding: encoding), values)
    }

    @Test("dequantization reproduces the values exactly", arguments: shapes.indices)
    func dequantize(shape: Int) throws {
        let (matrix, values) = try matrix(Self.shapes[shape], seed: UInt64(shape))
        let decoded = LinearWeight.packed(matrix).decoded()
        #expect(decoded == values)
    }

    @Test("float GEMV equals the F32 product to 1e-5 relative", arguments: shapes.indices)
    func floatGEMV(shape: Int) throws {
        let (matrix, values) = try matrix(Self.shapes[shape], seed: 100 + UInt64(shape))
        var generator = SeededGenerator(seed: 5)
        let x = (0..<matrix.columns).map { _ in Float(generator.nextGaussian()) }
        var y = [Float](repeating: 0, count: matrix.rows)
        var expanded = [Float](repeating: .nan, count: matrix.expandedCount)
        x.withUnsafeBufferPointer { xp in
            matrix.kernelSegments.withUnsafeBufferPointer { segments in
                lk_expand_f32(xp.baseAddress!, segments.baseAddress!, Int32(segments.count), &expanded)
            }
        }
        y.withUnsafeMutableBufferPointer {
            matrix.gemv(expanded: expanded, rows: 0..<matrix.rows, into: $0.baseAddress!)
        }
        let reference = (0..<matrix.rows).map { r in
            (0..<matrix.columns).reduce(0.0) { $0 + Double(values[r * matrix.columns + $1]) * Double(x[$1]) }
        }
        #expect(relativeError(y, reference.map(Float.init)) < 1e-5)
    }

    @Test("integer GEMV on quantized activations equals the fake-quantized product to 1e-5", arguments: shapes.indices)
    func integerGEMV(shape: Int) throws {
        let widths = Self.shapes[shape]
        let (matrix, values) = try matrix(widths, seed: 200 + UInt64(shape))
        // Activation parts aligned with the segments: the high part is the last segment when 8-bit.
        let high = widths.count > 1 && widths.last!.1 == 8 ? widths.last!.0 : 0
        let quantizer = ActivationQuantizer(bits: 4, highBits: 8, highCount: high, includeZero: true)
        guard let plan = matrix.integerPlan(quantizer) else {
            #expect(widths.count > 2, "only the three-part shape has segments straddling the quantizer's parts")
            return
        }
        var generator = SeededGenerator(seed: 9)
        var x = (0..<matrix.columns).map { _ in Float(generator.nextGaussian()) }
        let codes = QuantizedActivation(quantizer, width: matrix.columns)
        #expect(x.withUnsafeBufferPointer { codes.load($0.baseAddress!) })
        var y = [Float](repeating: 0, count: matrix.rows)
        var expanded = [UInt8](repeating: 0xFF, count: matrix.expandedCount)
        var sums = [Int32](repeating: 0, count: plan.count)
        plan.withUnsafeBufferPointer { lk_expand_u8(codes.codes, $0.baseAddress!, Int32($0.count), &expanded, &sums) }
        y.withUnsafeMutableBufferPointer {
            matrix.gemv(codes, expanded: expanded, sums: sums, plan: plan, rows: 0..<matrix.rows, into: $0.baseAddress!)
        }
        x.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: 1, width: matrix.columns) }
        let reference = (0..<matrix.rows).map { r in
            (0..<matrix.columns).reduce(0.0) { $0 + Double(values[r * matrix.columns + $1]) * Double(x[$1]) }
        }
        #expect(relativeError(y, reference.map(Float.init)) < 1e-5)
    }
}

@Suite("Quantized KV cache")
struct QuantizedKVCacheTests {
    @Test(
        "stored codes decode to exactly the fake-quantized values, constant and degenerate parts included",
        arguments: [true, false])
    func exactRoundTrip(includeZero: Bool) throws {
        let quantizer = ActivationQuantizer(bits: 4, highBits: 8, highCount: 2, groupSize: 8, includeZero: includeZero)
        let (width, rows) = (16, 6)
        var generator = SeededGenerator(seed: 21)
        var values = (0..<(rows * width)).map { _ in Float(generator.nextGaussian()) }
        // Row 1: a constant high part; row 2: a constant whole group; row 3: a range too small for a
        // step (the fake quantizer leaves it as it is); row 4: an infinity.
        values[width + 6] = 3
        values[width + 7] = 3
        for i in 0..<8 { values[2 * width + i] = -1.5 }
        values[3 * width + 14] = 3 * .leastNonzeroMagnitude
        values[3 * width + 15] = 5 * .leastNonzeroMagnitude
        values[4 * width + 3] = .infinity
        let cache = try #require(QuantizedKVCache(quantizer, width: width, layers: 2, maxContext: 8))
        values.withUnsafeBufferPointer { cache.store(layer: 1, position: 0, rows: rows, values: $0.baseAddress!) }
        var decoded = [Float](repeating: 0, count: rows * width)
        decoded.withUnsafeMutableBufferPointer { cache.dequantize(layer: 1, count: rows, into: $0.baseAddress!) }
        var expected = values
        expected.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: rows, width: width) }
        #expect(decoded.map(\.bitPattern) == expected.map(\.bitPattern))
        // 4-bit codes two per byte, 8-bit one per byte, F32 scale and zero per part.
        #expect(cache.bytesPerToken == 2 * (3 + 2) + 4 * 8)
    }
}

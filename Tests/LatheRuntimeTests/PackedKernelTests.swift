import CKernels
import Foundation
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

@testable import LatheRuntime

/// Random packed matrices: segments of assorted widths (4 and 8 bit, shorter and longer than a
/// 64-column nibble block, odd lengths), values exactly code · scale, or (code − zero) · scale
/// with unsigned codes and a random zero point per row slot.
func randomPacked(
    rows: Int, segments widths: [(Int, Int)], seed: UInt64, zeroPoints: Bool = false, halfScales: Bool = false
) throws -> (PackedIntegerEncoding, [Float]) {
    var generator = SeededGenerator(seed: seed)
    var segments: [PackedIntegerEncoding.Segment] = []
    var start = 0
    // Two slots shared alternately; a long list (a grouped layout) gets a slot per segment.
    let slotCount = widths.count > 8 ? widths.count : min(2, widths.count)
    for (index, (count, bits)) in widths.enumerated() {
        segments.append(.init(start: start, count: count, bits: bits, slot: index % slotCount))
        start += count
    }
    let encoding = try PackedIntegerEncoding(
        segments: segments, slotCount: slotCount, zeroPoints: zeroPoints, halfScales: halfScales)
    var values = [Float](repeating: 0, count: rows * start)
    for r in 0..<rows {
        let scales = (0..<slotCount).map { _ in
            let scale = Float(0.01 + abs(generator.nextGaussian()) * 0.02)
            return halfScales ? Float(Float16(scale)) : scale
        }
        let levels = (0..<slotCount).map { slot in segments.first { $0.slot == slot }?.bits == 8 ? 256 : 16 }
        let zeros = levels.map { Int(generator.next() % UInt64($0)) }
        for segment in segments {
            let top = segment.bits == 4 ? 8 : 128
            for c in segment.start..<(segment.start + segment.count) {
                let code = Int(generator.next() % UInt64(2 * top))
                let k = zeroPoints ? code - zeros[segment.slot] : code - top
                values[r * start + c] = Float(k) * scales[segment.slot]
            }
        }
    }
    return (encoding, values)
}

@Suite("Low-bit kernels against the simulated (decoded F32) path")
struct PackedKernelTests {
    static let shapes: [[(Int, Int)]] = [
        [(504, 4), (72, 8)], [(7, 4), (1, 8)], [(63, 4)], [(64, 4)], [(65, 4), (3, 8)], [(130, 4), (17, 8), (56, 4)],
        [(1536, 4)], [(32, 4), (33, 8), (96, 4), (31, 8)],
        // resq-w4a16's q_proj: groups of 32 with a slot each, the last low group of 24, the 8-bit tail.
        Array(repeating: (32, 4), count: 15) + [(24, 4), (32, 8), (32, 8), (8, 8)],
    ]
    /// Each shape with F32 scales, without and with weight zero points, then with F16 scales.
    static let cases = shapes.indices.flatMap { [($0, false, false), ($0, true, false), ($0, true, true)] }

    func matrix(
        _ widths: [(Int, Int)], rows: Int = 37, seed: UInt64, zeroPoints: Bool = false, halfScales: Bool = false
    ) throws -> (PackedMatrix, [Float]) {
        let (encoding, values) = try randomPacked(
            rows: rows, segments: widths, seed: seed, zeroPoints: zeroPoints, halfScales: halfScales)
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: rows) })
        return (try PackedMatrix([(TensorStorage(bytes: payload), rows)], encoding: encoding), values)
    }

    @Test(
        "dequantization reproduces the values exactly, with and without zero points, F32 and F16 scales",
        arguments: cases)
    func dequantize(shape: Int, zeroPoints: Bool, halfScales: Bool) throws {
        let (matrix, values) = try matrix(
            Self.shapes[shape], seed: UInt64(shape), zeroPoints: zeroPoints, halfScales: halfScales)
        let decoded = LinearWeight.packed(matrix).decoded()
        #expect(decoded == values)
        // The portable decoder (formats' reading path) agrees bit for bit.
        var portable = [Float](repeating: .nan, count: values.count)
        let payload = try #require(
            values.withUnsafeBufferPointer { matrix.encoding.encodeExactly($0, rows: matrix.rows) })
        payload.withUnsafeBytes { bytes in
            portable.withUnsafeMutableBufferPointer { matrix.encoding.decode(bytes, rows: matrix.rows, into: $0) }
        }
        #expect(portable == values)
    }

    @Test(
        "float GEMV equals the F32 product to 1e-5 relative, with and without zero points, F32 and F16 scales, SIMD and portable bodies",
        arguments: cases, [false, true])
    func floatGEMV(shape: (Int, Bool, Bool), portable: Bool) throws {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        let (matrix, values) = try matrix(
            Self.shapes[shape.0], seed: 100 + UInt64(shape.0), zeroPoints: shape.1, halfScales: shape.2)
        var generator = SeededGenerator(seed: 5)
        let x = (0..<matrix.columns).map { _ in Float(generator.nextGaussian()) }
        var y = [Float](repeating: 0, count: matrix.rows)
        var expanded = [Float](repeating: .nan, count: matrix.expandedCount)
        x.withUnsafeBufferPointer { xp in
            matrix.kernelSegments.withUnsafeBufferPointer { segments in
                lk_expand_f32(xp.baseAddress!, segments.baseAddress!, Int32(segments.count), &expanded)
            }
        }
        var sums = [Float](repeating: .nan, count: matrix.encoding.slotCount)
        lk_slot_sums_f32(
            expanded, matrix.kernelSegments, Int32(matrix.kernelSegments.count), Int32(sums.count), &sums)
        y.withUnsafeMutableBufferPointer {
            matrix.gemv(expanded: expanded, sums: sums, rows: 0..<matrix.rows, into: $0.baseAddress!)
        }
        let reference = (0..<matrix.rows).map { r in
            (0..<matrix.columns).reduce(0.0) { $0 + Double(values[r * matrix.columns + $1]) * Double(x[$1]) }
        }
        #expect(relativeError(y, reference.map(Float.init)) < 1e-5)
    }

    @Test(
        "integer GEMV on quantized activations equals the fake-quantized product to 1e-5, with and without zero points, F32 and F16 scales, SIMD and portable bodies",
        arguments: cases, [false, true])
    func integerGEMV(shape: (Int, Bool, Bool), portable: Bool) throws {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        let widths = Self.shapes[shape.0]
        let (matrix, values) = try matrix(
            widths, seed: 200 + UInt64(shape.0), zeroPoints: shape.1, halfScales: shape.2)
        // Activation parts aligned with the segments: the high part is the last segment when 8-bit.
        let high = widths.count > 1 && widths.last!.1 == 8 ? widths.last!.0 : 0
        let quantizer = ActivationQuantizer(bits: 4, highBits: 8, highCount: high, includeZero: true)
        let plan = try #require(matrix.integerPlan(quantizer), "every shape here has an integer plan")
        var generator = SeededGenerator(seed: 9)
        var x = (0..<matrix.columns).map { _ in Float(generator.nextGaussian()) }
        let codes = QuantizedActivation(quantizer, width: matrix.columns)
        #expect(x.withUnsafeBufferPointer { codes.load($0.baseAddress!) })
        // The codes are exactly the fake quantizer's, SIMD or not.
        var fake = x
        fake.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: 1, width: matrix.columns) }
        for part in codes.parts.indices {
            let p = codes.parts[part]
            for i in p.start..<(p.start + p.count) {
                #expect(codes.scales[part] * (Float(codes.codes[i]) - codes.zeros[part]) == fake[i])
            }
        }
        var y = [Float](repeating: 0, count: matrix.rows)
        var expanded = [UInt8](repeating: 0xFF, count: matrix.expandedCount)
        plan.withUnsafeBufferPointer { lk_expand_u8(codes.codes, $0.baseAddress!, Int32($0.count), &expanded) }
        var sums = [Int32](repeating: -1, count: plan.count)
        lk_segment_sums_u8(expanded, plan, Int32(plan.count), &sums)
        y.withUnsafeMutableBufferPointer {
            matrix.gemv(
                codes, expanded: expanded, sums: sums, plan: plan, rows: 0..<matrix.rows, into: $0.baseAddress!)
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
        let (width, rows) = (16, 7)
        var generator = SeededGenerator(seed: 21)
        var values = (0..<(rows * width)).map { _ in Float(generator.nextGaussian()) }
        // Row 1: a constant high part; row 2: a constant whole group; row 3: a range too small for a
        // step (the fake quantizer leaves it as it is); row 4: an infinity; row 5: a NaN, which has
        // no code while the fake quantizer quantizes the values beside it; row 6: values far from 0
        // in a narrow range, whose zero point (without zero in the range) is beyond Int16.
        values[width + 6] = 3
        values[width + 7] = 3
        for i in 0..<8 { values[2 * width + i] = -1.5 }
        values[3 * width + 14] = 3 * .leastNonzeroMagnitude
        values[3 * width + 15] = 5 * .leastNonzeroMagnitude
        values[4 * width + 3] = .infinity
        values[5 * width + 2] = .nan
        for i in 0..<8 { values[6 * width + i] = 1000 + Float(i) / 1000 }
        let cache = try #require(QuantizedKVCache(quantizer, width: width, layers: 2, maxContext: 8))
        values.withUnsafeBufferPointer { cache.store(layer: 1, position: 0, rows: rows, values: $0.baseAddress!) }
        var decoded = [Float](repeating: 0, count: rows * width)
        decoded.withUnsafeMutableBufferPointer { cache.dequantize(layer: 1, count: rows, into: $0.baseAddress!) }
        var expected = values
        expected.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: rows, width: width) }
        #expect(decoded.map(\.bitPattern) == expected.map(\.bitPattern))
        // 4-bit codes two per byte, 8-bit one per byte, an F32 scale and an Int16 zero point per part.
        #expect(cache.bytesPerToken == 2 * (3 + 2) + 4 * 6)
    }
}

@Suite("Decoding attention over the quantized KV cache")
struct QuantizedAttentionTests {
    /// (head_dim, KV heads, quantizer): head-wise groups; one group over the whole row, so parts
    /// straddle heads; an odd head size, so a piece starts inside a byte of 4-bit codes.
    static let layouts: [(Int, Int, ActivationQuantizer)] = [
        (64, 3, ActivationQuantizer(bits: 4, highBits: 8, highCount: 8, groupSize: 64, includeZero: true)),
        (40, 2, ActivationQuantizer(bits: 4, highBits: 8, highCount: 10, includeZero: false)),
        (33, 2, ActivationQuantizer(bits: 4, highBits: 8, highCount: 5, includeZero: true)),
    ]

    @Test(
        "lk_attend_quantized, whole or in merged spans, equals softmax(q·k/√d)·v over the dequantized cache to 1e-5, SIMD and portable bodies",
        arguments: layouts.indices, [false, true])
    func matchesDequantizedAttention(layout: Int, portable: Bool) throws {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        // One position, one group of eight, a block of 32 and a tail, two blocks and a tail; whole,
        // and cut into two or three spans merged by their softmax statistics.
        for visible in [1, 8, 37, 70] {
            for spans in [1, 2, 3] where spans <= visible {
                try matchesDequantizedAttention(layout: layout, visible: visible, spans: spans)
            }
        }
    }

    func matchesDequantizedAttention(layout: Int, visible: Int, spans: Int) throws {
        let (hd, kvHeads, quantizer) = Self.layouts[layout]
        let (width, group) = (hd * kvHeads, 3)
        var generator = SeededGenerator(seed: UInt64(40 + layout))
        let keys = (0..<(visible * width)).map { _ in Float(generator.nextGaussian()) * 2 }
        let values = (0..<(visible * width)).map { _ in Float(generator.nextGaussian()) }
        let query = (0..<(group * hd)).map { _ in Float(generator.nextGaussian()) }
        let keyCache = try #require(QuantizedKVCache(quantizer, width: width, layers: 1, maxContext: 80))
        let valueCache = try #require(QuantizedKVCache(quantizer, width: width, layers: 1, maxContext: 80))
        keys.withUnsafeBufferPointer { keyCache.store(layer: 0, position: 0, rows: visible, values: $0.baseAddress!) }
        values.withUnsafeBufferPointer {
            valueCache.store(layer: 0, position: 0, rows: visible, values: $0.baseAddress!)
        }
        // The reference values come from the fake quantizer (Swift), not from the cache's decoders.
        var (k, v) = (keys, values)
        k.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: visible, width: width) }
        v.withUnsafeMutableBufferPointer { quantizer.apply($0.baseAddress!, rows: visible, width: width) }
        let scale = 1 / Float(hd).squareRoot()
        for kvHead in 0..<kvHeads {
            var out = [Float](repeating: .nan, count: group * hd)
            var scores = [Float](repeating: .nan, count: group * visible)
            let keyPieces = keyCache.pieces(head: kvHead, headDim: hd)
            let valuePieces = valueCache.pieces(head: kvHead, headDim: hd)
            let (keyRecords, valueRecords) = (
                keyCache.records(layer: 0).assumingMemoryBound(to: UInt8.self),
                valueCache.records(layer: 0).assumingMemoryBound(to: UInt8.self)
            )
            if spans == 1 {
                lk_attend_quantized(
                    query, Int32(group), Int32(hd), scale, keyRecords, Int32(keyCache.recordBytes), keyPieces,
                    Int32(keyPieces.count), valueRecords, Int32(valueCache.recordBytes), valuePieces,
                    Int32(valuePieces.count), Int32(visible), &scores, &out)
            } else {
                var (outs, maxima, sums) = (
                    [Float](repeating: .nan, count: spans * group * hd), [Float](repeating: .nan, count: spans * group),
                    [Float](repeating: .nan, count: spans * group)
                )
                for span in 0..<spans {
                    let first = span * visible / spans
                    let count = (span + 1) * visible / spans - first
                    outs.withUnsafeMutableBufferPointer { o in
                        maxima.withUnsafeMutableBufferPointer { m in
                            sums.withUnsafeMutableBufferPointer { t in
                                lk_attend_quantized_span(
                                    query, Int32(group), Int32(hd), scale, keyRecords, Int32(keyCache.recordBytes),
                                    keyPieces, Int32(keyPieces.count), valueRecords, Int32(valueCache.recordBytes),
                                    valuePieces, Int32(valuePieces.count), Int32(visible), &scores,
                                    o.baseAddress! + span * group * hd, Int32(first), Int32(count),
                                    m.baseAddress! + span * group, t.baseAddress! + span * group)
                            }
                        }
                    }
                }
                lk_attend_merge(Int32(group), Int32(hd), Int32(spans), maxima, sums, outs, &out)
            }
            var expected: [Double] = []
            for head in 0..<group {
                var logits = [Double](repeating: 0, count: visible)
                for j in 0..<visible {
                    for i in 0..<hd {
                        logits[j] += Double(query[head * hd + i]) * Double(k[j * width + kvHead * hd + i])
                    }
                    logits[j] *= Double(scale)
                }
                let top = logits.max()!
                let weights = logits.map { Foundation.exp($0 - top) }
                let total = weights.reduce(0, +)
                for i in 0..<hd {
                    var sum = 0.0
                    for j in 0..<visible { sum += weights[j] / total * Double(v[j * width + kvHead * hd + i]) }
                    expected.append(sum)
                }
                if spans == 1 {
                    let probabilities = scores[(head * visible)..<((head + 1) * visible)]
                    #expect(abs(probabilities.reduce(0, +) - 1) < 1e-5)
                }
            }
            #expect(relativeError(out, expected.map(Float.init)) < 1e-5)
        }
    }
}

@Suite("SIMD softmax and SwiGLU against Double references")
struct ElementwiseKernelTests {
    @Test(
        "lk_softmax is within 2e-6 relative of the exact softmax, sums to 1, SIMD and portable bodies",
        arguments: [false, true])
    func softmax(portable: Bool) {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        var generator = SeededGenerator(seed: 77)
        // Lengths around the 8-wide blocks; spreads from flat to scores 100 apart (terms below e^−87).
        for (length, spread) in [(1, 1.0), (7, 3.0), (8, 10.0), (37, 30.0), (130, 100.0)] {
            let scores0 = (0..<length).map { _ in Float(generator.nextGaussian() * spread) }
            var scores = scores0
            let top = Double(scores.max()!)
            let exponentials = scores.map { Foundation.exp(Double($0) - top) }
            let total = exponentials.reduce(0, +)
            let expected = exponentials.map { $0 / total }
            lk_softmax(&scores, Int32(length))
            for (index, (got, want)) in zip(scores, expected).enumerated() {
                // The float subtraction score − max already rounds the exponent by up to half an
                // ulp of its magnitude; beyond that, 2e-6 relative.
                let argument = abs(Double(scores0[index]) - top)
                // Terms below e^−87.3 ≈ 1.2e-38 may be flushed to zero.
                let tolerance = want * (2e-6 + argument * 0x1p-23) + 1.3e-38
                #expect(abs(Double(got) - want) <= tolerance, "length \(length): \(got) vs \(want)")
            }
            #expect(abs(scores.reduce(0, +) - 1) < 1e-5)
        }
    }

    @Test(
        "lk_silu_mul is within 4 ulp of g / (1 + e^−g) · u where that exceeds 1e-34, SIMD and portable bodies",
        arguments: [false, true])
    func silu(portable: Bool) {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        var gate: [Float] = [
            0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 3, -3, 20, -20, 80, -80, 87, -87, 88, -88, -100, 1000, -1000,
        ]
        var generator = SeededGenerator(seed: 78)
        gate += (0..<45).map { _ in Float(generator.nextGaussian() * 4) }
        let up = gate.indices.map { Float(1 + $0 % 3) }
        var result = gate
        lk_silu_mul(&result, up, Int32(gate.count))
        for i in gate.indices {
            let g = Double(gate[i])
            let expected = Float(g / (1 + Foundation.exp(-g)) * Double(up[i]))
            if abs(expected) < 1e-34 {
                // Far below any value that matters (g < −80): the bodies may flush it to zero.
                #expect(abs(result[i]) < 1e-34, "g \(gate[i]): \(result[i])")
            } else {
                #expect(abs(result[i] - expected) <= 4 * expected.ulp, "g \(gate[i]): \(result[i]) vs \(expected)")
            }
        }
    }
}

import CKernels
import Foundation
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

@testable import LatheRuntime

@Suite("Online-transform and quantizer kernels of decoding")
struct TransformKernelTests {
    /// Orders K·2^m with K = 1, 12, 20 and 2^m from 1 up: SmolLM2's FFN (1536 = 12·128), a power
    /// of two, blocks shorter than a SIMD register, a base above 12.
    static let hadamardOrders = [1536, 64, 12, 24, 96, 4, 160]

    @Test(
        "lk_hadamard gives the same bits as HadamardPlan.apply, scaled and not, SIMD and portable bodies",
        arguments: hadamardOrders, [false, true])
    func hadamardMatchesPlan(order: Int, portable: Bool) throws {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        let plan = try HadamardPlan(order: order)
        var generator = SeededGenerator(seed: UInt64(order))
        for scale in [Float(1), 1 / Float(order).squareRoot()] {
            var x = (0..<order).map { _ in Float(generator.nextGaussian()) }
            x[0] = -0.0
            var expected = x
            try expected.withUnsafeMutableBufferPointer { try plan.apply(to: $0, scale: scale) }
            plan.baseEntries.withUnsafeBufferPointer { entries in
                lk_hadamard(&x, Int32(plan.base), Int32(plan.powerOfTwo), entries.baseAddress!, scale)
            }
            #expect(x.map(\.bitPattern) == expected.map(\.bitPattern))
        }
    }

    @Test(
        "lk_rotate_heads equals the fake-quantized vectors times U to 1e-6 relative (bits 0 and 8; head sizes 64 and 40), SIMD and portable bodies",
        arguments: [(64, 0), (64, 8), (40, 8), (40, 0)], [false, true])
    func rotateHeads(shape: (Int, Int), portable: Bool) throws {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        let (hd, bits) = shape
        let rows = 12
        var generator = SeededGenerator(seed: UInt64(hd + bits))
        let rotation = (0..<(hd * hd)).map { _ in Float(generator.nextGaussian()) / Float(hd).squareRoot() }
        var x = (0..<(rows * hd)).map { _ in Float(generator.nextGaussian()) }
        // A zero vector, which the quantizer gives its default range.
        for i in 0..<hd { x[5 * hd + i] = 0 }
        var quantized = x
        if bits > 0 {
            quantized.withUnsafeMutableBufferPointer {
                ActivationQuantizer(bits: bits, includeZero: true).apply($0.baseAddress!, rows: rows, width: hd)
            }
        }
        let expected = (0..<(rows * hd)).map { index -> Float in
            let (row, column) = (index / hd, index % hd)
            let sum = (0..<hd).reduce(0.0) {
                $0 + Double(quantized[row * hd + $1]) * Double(rotation[$1 * hd + column])
            }
            return Float(sum)
        }
        lk_rotate_heads(&x, Int32(rows), Int32(hd), rotation, Int32(bits))
        #expect(relativeError(x, expected) < 1e-6)
    }

    /// Vectors whose range is decided by special values: signed zeros, an infinity, all equal,
    /// lengths around the SIMD width.
    static func specialVectors() -> [[Float]] {
        var generator = SeededGenerator(seed: 77)
        var vectors: [[Float]] = []
        for length in [1, 3, 7, 8, 9, 16, 17, 64, 65] {
            let base = (0..<length).map { _ in Float(generator.nextGaussian()) }
            vectors.append(base)
            vectors.append(base.map { $0 == base[0] ? -0.0 : abs($0) })
            vectors.append([Float](repeating: 0.5, count: length))
            vectors.append([-0.0] + [Float](repeating: 0, count: length - 1))
            var withInfinity = base
            withInfinity[length - 1] = .infinity
            vectors.append(withInfinity)
        }
        return vectors
    }

    @Test(
        "lk_quantize_asymmetric's codes give the fake quantizer's bits, or it declines where the fake quantizer leaves values as they are or a NaN has no code, SIMD and portable bodies",
        arguments: [false, true], [true, false])
    func quantizerMatchesFakeQuantizer(portable: Bool, includeZero: Bool) {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        for (index, vector) in Self.specialVectors().enumerated() {
            for bits in [4, 8] {
                var fake = vector
                fake.withUnsafeMutableBufferPointer {
                    UniformQuantizer.asymmetric($0.baseAddress!, count: $0.count, bits: bits, includeZero: includeZero)
                }
                var codes = [UInt8](repeating: 0, count: vector.count)
                var (scale, zero): (Float, Float) = (0, 0)
                let quantized = lk_quantize_asymmetric(
                    vector, Int32(vector.count), Int32(bits), includeZero ? 1 : 0, 1, &codes, &scale, &zero)
                if quantized == 0 {
                    #expect(fake.map(\.bitPattern) == vector.map(\.bitPattern), "vector \(index), \(bits) bits")
                } else {
                    let decoded = codes.map { scale * (Float($0) - zero) }
                    #expect(decoded.map(\.bitPattern) == fake.map(\.bitPattern), "vector \(index), \(bits) bits")
                }
            }
        }
        // A NaN first, in the middle of a SIMD group, or in the scalar tail: no codes.
        for position in [0, 5, 16] {
            var vector = (0..<17).map { Float($0) - 8 }
            vector[position] = .nan
            var codes = [UInt8](repeating: 0, count: vector.count)
            var (scale, zero): (Float, Float) = (0, 0)
            #expect(
                lk_quantize_asymmetric(
                    vector, Int32(vector.count), 4, includeZero ? 1 : 0, 1, &codes, &scale, &zero) == 0,
                "NaN at \(position)")
        }
    }

    @Test(
        "lk_fake_quantize gives UniformQuantizer.asymmetric's bits (2, 4 and 8 bits, clipped or not, zero in the range or not), and where it declines leaves the values for the float quantizer, SIMD and portable bodies",
        arguments: [false, true], [true, false])
    func fakeQuantizerMatchesFloatQuantizer(portable: Bool, includeZero: Bool) {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        var generator = SeededGenerator(seed: 5)
        let wide = (0..<1344).map { _ in Float(generator.nextGaussian()) * 3 + 0.5 }
        var nan = wide
        nan[700] = .nan
        for (index, vector) in (Self.specialVectors() + [wide, nan]).enumerated() {
            for (bits, clip) in [(2, Float(1)), (4, 1), (8, 1), (4, 0.9), (12, 1)] {
                var expected = vector
                expected.withUnsafeMutableBufferPointer {
                    UniformQuantizer.asymmetric(
                        $0.baseAddress!, count: $0.count, bits: bits, includeZero: includeZero, clip: clip)
                }
                var x = vector
                var codes = [UInt8](repeating: 0, count: vector.count)
                if lk_fake_quantize(&x, Int32(x.count), Int32(bits), includeZero ? 1 : 0, clip, &codes) == 0 {
                    #expect(x.map(\.bitPattern) == vector.map(\.bitPattern), "vector \(index), \(bits) bits declined")
                    x.withUnsafeMutableBufferPointer {
                        UniformQuantizer.asymmetric(
                            $0.baseAddress!, count: $0.count, bits: bits, includeZero: includeZero, clip: clip)
                    }
                } else {
                    #expect(bits <= 8 && !vector.contains(where: \.isNaN), "vector \(index), \(bits) bits")
                }
                #expect(
                    x.map(\.bitPattern) == expected.map(\.bitPattern), "vector \(index), \(bits) bits, clip \(clip)")
            }
        }
    }

    @Test("the integer GEMV gives each row the same bits whether it runs alone or beside another")
    func rowPairsMatchSingleRows() throws {
        let widths: [(Int, Int)] = Array(repeating: [(56, 4), (8, 8)], count: 9).flatMap { $0 }
        let (encoding, values) = try randomPacked(rows: 9, segments: widths, seed: 31)
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 9) })
        let matrix = try PackedMatrix([(TensorStorage(bytes: payload), 9)], encoding: encoding)
        let quantizer = ActivationQuantizer(bits: 4, highBits: 8, highCount: 8, groupSize: 64, includeZero: true)
        let plan = try #require(matrix.integerPlan(quantizer))
        var generator = SeededGenerator(seed: 32)
        let x = (0..<matrix.columns).map { _ in Float(generator.nextGaussian()) }
        let codes = QuantizedActivation(quantizer, width: matrix.columns)
        #expect(x.withUnsafeBufferPointer { codes.load($0.baseAddress!) })
        var expanded = [UInt8](repeating: 0, count: matrix.expandedCount)
        plan.withUnsafeBufferPointer { lk_expand_u8(codes.codes, $0.baseAddress!, Int32($0.count), &expanded) }
        var sums = [Int32](repeating: 0, count: plan.count)
        lk_segment_sums_u8(expanded, plan, Int32(plan.count), &sums)
        var together = [Float](repeating: 0, count: 9)
        var alone = [Float](repeating: 0, count: 9)
        together.withUnsafeMutableBufferPointer {
            matrix.gemv(codes, expanded: expanded, sums: sums, plan: plan, rows: 0..<9, into: $0.baseAddress!)
        }
        alone.withUnsafeMutableBufferPointer { y in
            for r in 0..<9 {
                matrix.gemv(codes, expanded: expanded, sums: sums, plan: plan, rows: r..<(r + 1), into: y.baseAddress!)
            }
        }
        #expect(together.map(\.bitPattern) == alone.map(\.bitPattern))
        #expect(together.allSatisfy { $0 != 0 && $0.isFinite })
    }

    @Test(
        "lk_argmax finds the first largest value as the scalar scan does: ties, NaNs, the tail, SIMD and portable bodies",
        arguments: [false, true])
    func argmax(portable: Bool) {
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        func scan(_ x: [Float]) -> Int {
            var best = 0
            for i in 1..<x.count where x[i] > x[best] { best = i }
            return best
        }
        var generator = SeededGenerator(seed: 12)
        var cases: [[Float]] = []
        for length in [1, 7, 8, 9, 16, 23, 49_152] {
            let x = (0..<length).map { _ in Float(generator.nextGaussian()) }
            cases.append(x)
            // The maximum repeated in several lanes and in the tail: the first one wins.
            var ties = x.map { min($0, 1) }
            for i in stride(from: 3, to: length, by: 5) { ties[i] = 2 }
            cases.append(ties)
            var withNaN = x
            withNaN[length / 2] = .nan
            cases.append(withNaN)
            var nanFirst = x
            nanFirst[0] = .nan
            cases.append(nanFirst)
            cases.append([Float](repeating: -0.0, count: length))
        }
        for (index, x) in cases.enumerated() {
            #expect(Int(lk_argmax(x, Int32(x.count))) == scan(x), "case \(index)")
        }
        #expect(Generator.greedyToken([0, 3, 1, 3, 9], vocab: 4) == 1)
    }
}

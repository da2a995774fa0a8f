import CKernels
import LatheBuiltins
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

/// The SIMD encoders LatheBuiltins installs against LatheCore's portable path: the same bytes.
@Suite("SIMD encoders")
struct EncoderAccelerationTests {
    /// `values` encoded as `dtype` with the installed SIMD bodies or, on this thread, the portable ones.
    func encode(_ values: [Float], as dtype: DType, portable: Bool) throws -> [UInt8] {
        LatheBuiltins.installEncoders()
        lk_use_portable_on_this_thread(portable ? 1 : 0)
        defer { lk_use_portable_on_this_thread(0) }
        return try values.withUnsafeBufferPointer { try TensorCodec.encode($0, as: dtype) }
    }

    @Test("the builtins install both encoders, and this machine runs them, so the comparisons below compare two paths")
    func simdAvailable() {
        _ = LatheBuiltins.registry
        #expect(EncoderAcceleration.isInstalled == (true, true))
        #expect(lk_uses_avx2() == 1, "no AVX2/FMA/F16C here: the SIMD encoders are not exercised")
    }

    @Test("F16 through F16C: the portable bytes for every 4093rd bit pattern, NaNs and boundaries included")
    func half() throws {
        let values = FloatPatterns.halfPrecisionEdges
        #expect(try encode(values, as: .f16, portable: false) == encode(values, as: .f16, portable: true))
    }

    @Test("Q8_0 and Q4_0: the SIMD quantizer writes the portable one's bytes, edge blocks included")
    func quantizers() throws {
        var generator = SeededGenerator(seed: 31)
        var blocks: [[Float]] = (0..<64).map { _ in (0..<32).map { _ in Float(generator.nextGaussian() * 3) } }
        // Halves after scaling (d = 1 for Q8_0 when the largest is 127; ties must go away from zero),
        // ±0, a tie between +m and −m for Q4_0's signed maximum, subnormal and tiny blocks whose
        // 1/d overflows, a block of one huge value, and blocks holding an infinity or a NaN, which
        // the SIMD quantizer leaves to the portable path between blocks it does.
        blocks.append([127] + (1..<32).map { Float($0 % 8) + 0.5 - Float($0 % 3) * 4 })
        blocks.append([Float](repeating: 0, count: 31) + [-0.0])
        blocks.append([-2, 2] + [Float](repeating: 1, count: 30))
        blocks.append([2, -2] + [Float](repeating: -1, count: 30))
        blocks.append((0..<32).map { Float($0) * 0x1p-133 })
        blocks.append((0..<32).map { Float($0 - 16) * 0x1p-128 })
        blocks.append([3e38] + [Float](repeating: -1e-3, count: 31))
        for (index, special) in [Float.infinity, -.infinity, .nan, -.nan].enumerated() {
            var block = (0..<32).map { _ in Float(generator.nextGaussian()) }
            block[index * 9] = special
            blocks.insert(block, at: 10 + 7 * index)
        }
        blocks.append([Float](repeating: .nan, count: 32))
        let values = blocks.flatMap { $0 }
        for type in [GGMLBlockType.q8_0, .q4_0] {
            let dtype = DType.quantized(.ggml(type))
            let (simd, portable) = (
                try encode(values, as: dtype, portable: false), try encode(values, as: dtype, portable: true)
            )
            let differing = stride(from: 0, to: simd.count, by: type.bytesPerBlock).filter {
                simd[$0..<($0 + type.bytesPerBlock)] != portable[$0..<($0 + type.bytesPerBlock)]
            }
            #expect(differing.isEmpty, "\(type.name): blocks at byte offsets \(differing) differ")
        }
    }
}

import CKernels
import Foundation
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

@testable import LatheRuntime

@Suite("The integer GEMM of a prompt against the one-token GEMV")
struct PackedGEMMTests {
    /// Packed shapes without weight zero points, with the quantizer whose parts line up with them:
    /// a hidden-size row (4-bit head, 8-bit tail), o_proj's head-wise rows (56 + 8 per head of 64),
    /// and odd lengths around the 64-column block and the 16-column 8-bit step.
    static let shapes: [(widths: [(Int, Int)], quantizer: ActivationQuantizer)] = [
        ([(504, 4), (72, 8)], ActivationQuantizer(bits: 4, highBits: 8, highCount: 72, includeZero: true)),
        (
            Array(repeating: [(56, 4), (8, 8)], count: 9).flatMap { $0 },
            ActivationQuantizer(bits: 4, highBits: 8, highCount: 8, groupSize: 64, includeZero: false)
        ),
        ([(65, 4), (3, 8)], ActivationQuantizer(bits: 4, highBits: 8, highCount: 3, includeZero: true)),
        ([(1536, 4)], ActivationQuantizer(bits: 4, includeZero: true)),
        ([(7, 4), (17, 8)], ActivationQuantizer(bits: 4, highBits: 8, highCount: 17, includeZero: true)),
    ]

    /// The kernel bodies: the machine's best (VNNI where it has it), AVX2 without VNNI, portable C.
    enum Body: CaseIterable { case best, noVNNI, portable }

    static func matrix(_ widths: [(Int, Int)], rows: Int, seed: UInt64, halfScales: Bool) throws -> PackedMatrix {
        let (encoding, values) = try randomPacked(rows: rows, segments: widths, seed: seed, halfScales: halfScales)
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: rows) })
        return try PackedMatrix([(TensorStorage(bytes: payload), rows)], encoding: encoding)
    }

    @Test(
        "every token's outputs are the bits the GEMV gives it: 1 to 21 tokens, 37 rows whole or from row 5, F32 and F16 scales, every body",
        arguments: shapes.indices, Body.allCases)
    func matchesGEMV(shape: Int, body: Body) throws {
        lk_use_portable_on_this_thread(body == .portable ? 1 : 0)
        lk_avoid_vnni_on_this_thread(body == .noVNNI ? 1 : 0)
        defer {
            lk_use_portable_on_this_thread(0)
            lk_avoid_vnni_on_this_thread(0)
        }
        let (widths, quantizer) = Self.shapes[shape]
        for halfScales in [false, true] {
            let matrix = try Self.matrix(widths, rows: 37, seed: 300 + UInt64(shape), halfScales: halfScales)
            let plan = try #require(matrix.integerPlan(quantizer))
            let (k, stride, partCount) = (
                matrix.columns, matrix.expandedCount, quantizer.parts(width: matrix.columns).count
            )
            var generator = SeededGenerator(seed: 41)
            let tokens = 21
            var codes = [UInt8](repeating: 0xFF, count: tokens * stride)
            var scales = [Float](repeating: 0, count: tokens * partCount)
            var zeros = scales
            var expected = [Float](repeating: 0, count: tokens * matrix.rows)
            let activation = QuantizedActivation(quantizer, width: k)
            for t in 0..<tokens {
                let x = (0..<k).map { _ in Float(generator.nextGaussian()) * Float(1 + t % 3) }
                #expect(x.withUnsafeBufferPointer { activation.load($0.baseAddress!) })
                var expanded = [UInt8](repeating: 0, count: stride)
                plan.withUnsafeBufferPointer {
                    lk_expand_u8(activation.codes, $0.baseAddress!, Int32($0.count), &expanded)
                }
                codes.replaceSubrange((t * stride)..<((t + 1) * stride), with: expanded)
                scales.replaceSubrange((t * partCount)..<((t + 1) * partCount), with: activation.scales)
                zeros.replaceSubrange((t * partCount)..<((t + 1) * partCount), with: activation.zeros)
                expected.withUnsafeMutableBufferPointer {
                    matrix.gemv(
                        activation, expanded: expanded, sums: [], plan: plan, rows: 0..<matrix.rows,
                        into: $0.baseAddress! + t * matrix.rows)
                }
            }
            for count in [1, 3, 8, 9, tokens] {
                for rows in [0..<matrix.rows, 5..<matrix.rows] {
                    var y = [Float](repeating: .nan, count: count * matrix.rows)
                    y.withUnsafeMutableBufferPointer {
                        matrix.gemm(
                            codes: codes, stride: stride, tokens: count, scales: scales, zeros: zeros,
                            partStride: partCount, plan: plan, rows: rows, into: $0.baseAddress!, ldy: matrix.rows)
                    }
                    for t in 0..<count {
                        let got = y[(t * matrix.rows + rows.lowerBound)..<((t + 1) * matrix.rows)]
                        let want = expected[(t * matrix.rows + rows.lowerBound)..<((t + 1) * matrix.rows)]
                        #expect(
                            got.map(\.bitPattern) == want.map(\.bitPattern),
                            "token \(t) of \(count), rows \(rows), F16 scales \(halfScales)")
                    }
                    // Rows before the range are not written.
                    #expect(y[0..<rows.lowerBound].allSatisfy { $0.isNaN })
                }
            }
        }
    }

    @Test("rows with weight zero points are declined: nothing written, 0 returned")
    func declinesZeroPoints() throws {
        let (encoding, values) = try randomPacked(rows: 4, segments: [(64, 4)], seed: 3, zeroPoints: true)
        let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 4) })
        let matrix = try PackedMatrix([(TensorStorage(bytes: payload), 4)], encoding: encoding)
        let plan = matrix.kernelSegments
        var y = [Float](repeating: .nan, count: 4)
        let codes = [UInt8](repeating: 1, count: matrix.expandedCount)
        let returned = [Float(1)].withUnsafeBufferPointer { one in
            plan.withUnsafeBufferPointer { segments in
                lk_gemm_packed_u8(
                    nil, 4, segments.baseAddress!, Int32(segments.count), matrix.kernelLayout, nil, codes,
                    Int32(codes.count), 1, one.baseAddress!, one.baseAddress!, 1, &y, 4)
            }
        }
        #expect(returned == 0)
        #expect(y.allSatisfy { $0.isNaN })
    }

    @Test(
        "a session's product over a prompt gives each token the bits the token-by-token product gives it, a token with a NaN (float path) included, at 1 and 2 threads",
        arguments: [1, 2])
    func sessionPromptMatchesTokens(threads: Int) throws {
        let (_, packed) = try QuantizedTinyModel.graphs(activations: true)
        let session = LlamaSession(weights: try LlamaWeights(packed), maxContext: 8, threads: threads)
        let (widths, quantizer) = Self.shapes[1]
        let matrix = try Self.matrix(widths, rows: 70, seed: 9, halfScales: true)
        let (n, k, tokens) = (matrix.rows, matrix.columns, 11)
        var generator = SeededGenerator(seed: 12)
        var x = (0..<(tokens * k)).map { _ in Float(generator.nextGaussian()) }
        x[3 * k + 100] = .nan
        var prompt = x
        let together = session.project(
            &prompt, rows: tokens, .packed(matrix), out: n, in: k, quantizer: quantizer, site: "test")
        for t in 0..<tokens {
            var row = Array(x[(t * k)..<((t + 1) * k)])
            let alone = session.project(
                &row, rows: 1, .packed(matrix), out: n, in: k, quantizer: quantizer, site: "test")
            #expect(together[(t * n)..<((t + 1) * n)].map(\.bitPattern) == alone.map(\.bitPattern), "token \(t)")
            #expect(alone.allSatisfy { $0.isNaN } == (t == 3), "token \(t)")
        }
    }
}

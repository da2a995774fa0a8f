import Foundation
import LatheCore
import LatheTestSupport
import Testing

/// ggml's own reference quantizers' bytes for fixed inputs (see Fixtures/README.md).
struct GoldenCase: Sendable, CustomTestStringConvertible {
    var name: String
    var input: [Float]
    var outputs: [String: [UInt8]]
    var testDescription: String { name }

    static let all: [GoldenCase] = {
        let url = Fixtures.packageRoot.appendingPathComponent(
            "Tests/LatheCoreTests/Fixtures/ggml-reference-quants.json")
        guard let data = try? Data(contentsOf: url),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let cases = json["cases"] as? [[String: Any]]
        else { return [] }
        return cases.map { entry in
            let bytes = hexBytes(entry["input_f32le_hex"] as? String ?? "")
            let input = stride(from: 0, to: bytes.count, by: 4).map { i in
                Float(
                    bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(
                        bytes[i + 3]) << 24)
            }
            let outputs = (entry["outputs"] as? [String: String] ?? [:]).mapValues(hexBytes)
            return GoldenCase(name: entry["name"] as? String ?? "?", input: input, outputs: outputs)
        }
    }()
}

@Suite("ggml reference quantizers (golden bytes)")
struct GGMLGoldenTests {
    @Test("the golden file loads")
    func loads() {
        #expect(GoldenCase.all.count == 7)
    }

    @Test("Lathe's quantizers reproduce ggml's bytes for every type", arguments: GoldenCase.all)
    func matches(golden: GoldenCase) throws {
        for (name, type) in [
            ("Q4_0", GGMLBlockType.q4_0), ("Q4_1", .q4_1), ("Q5_0", .q5_0), ("Q5_1", .q5_1), ("Q8_0", .q8_0),
            ("Q4_K", .q4_K),
            ("Q6_K", .q6_K),
        ] {
            let expected = try #require(golden.outputs[name])
            let actual = try encodeBlock(type, golden.input)
            let differing = stride(from: 0, to: expected.count, by: type.bytesPerBlock).filter {
                expected[$0..<($0 + type.bytesPerBlock)] != actual[$0..<($0 + type.bytesPerBlock)]
            }
            #expect(differing.isEmpty, "\(golden.name) \(name): blocks at byte offsets \(differing) differ")
        }
    }

    /// A uniform quantizer with step Δ has RMS error Δ/√12. Q4_K: 15 steps over a 32-value sub-block's
    /// range (about ±2.1σ), so Δ ≈ 0.28σ and the relative error ≈ 0.08; Q6_K: 32 steps over the
    /// largest magnitude of 16 values (about 1.9σ), Δ ≈ 0.06σ, ≈ 0.017. The bounds are 1.5× and 1.8×
    /// those: loose enough for the 6/8-bit scale rounding, tight enough to catch a lost bit or scale.
    @Test("Q4_K and Q6_K round-trip a Gaussian block to their expected accuracy")
    func accuracy() throws {
        var generator = SeededGeneratorLite(seed: 9)
        let x = (0..<1024).map { _ in generator.gaussian() }
        for (type, bound) in [(GGMLBlockType.q4_K, Float(0.12)), (.q6_K, 0.03)] {
            let y = try decodeBlocks(type, encodeBlock(type, x), count: x.count)
            #expect(relativeError(y, x) < bound, "\(type.name) relative error \(relativeError(y, x))")
        }
    }
}

func decodeBlocks(_ type: GGMLBlockType, _ bytes: [UInt8], count: Int) throws -> [Float] {
    var output = [Float](repeating: .nan, count: count)
    try bytes.withUnsafeBytes { raw in
        try output.withUnsafeMutableBufferPointer {
            try TensorCodec.decode(.quantized(.ggml(type)), from: raw, into: $0)
        }
    }
    return output
}

/// A tiny Gaussian source so this test target needs no LinearAlgebra.
struct SeededGeneratorLite {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func uniform() -> Float {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return (Float(state >> 40) + 0.5) / Float(1 << 24)
    }
    mutating func gaussian() -> Float {
        (-2 * log(uniform())).squareRoot() * cos(2 * .pi * uniform())
    }
}

import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LatheTestSupport
import Testing

@Suite("The runtime against an independent forward pass")
struct ForwardOracleTests {
    /// The oracle (`Tests/Oracles/llama_forward.py`) shares no code or layout with the runtime: it
    /// reads the GGUF with gguf-py's reader and dequantizers and runs Hugging Face's Llama in float64
    /// on llama.cpp's permuted q/k rows (RoPE on adjacent pairs), where the runtime unpermutes them
    /// and rotates halves in float32.
    @Test(
        "SmolLM2's logits equal a float64 numpy Llama on gguf-py's dequantized tensors, to 1e-5 of their scale",
        .enabled(
            if: Fixtures.smolLM2IsAvailable && Oracle.isAvailable,
            Comment(rawValue: "\(Fixtures.smolLM2SkipReason); or \(Oracle.skipReason)")))
    func smolLM2() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let graph = try ModelInput.open(Fixtures.smolLM2)
        let tokenizer = try BPETokenizer(try #require(graph.tokenizer))
        let tokens = tokenizer.encode(
            "The tower is 324 metres tall, about the same height as an 81-storey building.", addSpecial: true)
        let output = work.appendingPathComponent("logits.bin")
        try Oracle.run("llama_forward.py", [Fixtures.smolLM2.path, output.path] + tokens.map(String.init))
        let expected = try Data(contentsOf: output).withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
        let actual = try logits(graph, tokens)
        try #require(expected.count == actual.count)
        let scale = expected.map(abs).max() ?? 0
        let error = zip(actual, expected).map { abs(Double($0) - $1) }.max() ?? .nan
        #expect(error / scale < 1e-5, "max |difference| \(error) against logits up to \(scale)")
        // The same choice at every position.
        let vocabulary = expected.count / tokens.count
        func argmax(_ values: [Double]) -> Int? { values.indices.max { values[$0] < values[$1] } }
        for row in 0..<tokens.count {
            let slice = (row * vocabulary)..<((row + 1) * vocabulary)
            #expect(argmax(Array(expected[slice])) == argmax(actual[slice].map(Double.init)), "position \(row)")
        }
    }
}

import Foundation
import LatheCore
import LatheTestSupport
import PassActivationQuant
import PassEncoding
import PassWeightQuant
import Testing

@testable import LatheRuntime

/// A tiny model through the quantization passes (RTN W4 with an 8-bit subspace, A4/8, KV4/8), as
/// the simulated F32 graph and as the packed one.
enum QuantizedTinyModel {
    static func options<T: Decodable>(_ type: T.Type, _ json: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(json.utf8))
    }

    /// `quantize-weights` options of the grouped layout `resq-w4a16` uses: groups of 8 columns with
    /// zero points and F16 scales.
    static let grouped = #"{"method": "rtn", "groupSize": 8, "asymmetric": true, "halfScales": true}"#

    static func graphs(activations: Bool, weights: String = #"{"method": "rtn"}"#) throws
        -> (simulated: ModelGraph, packed: ModelGraph)
    {
        var graph = try TinyModel.graph()
        try SubspaceLayout(hiddenHigh: 8, headHigh: 4, basis: "pca").store(in: &graph.metadata)
        var context = PassContext()
        try QuantizeWeightsPass(options: options(QuantizeWeightsPass.Options.self, weights))
            .apply(&graph, context: &context)
        if activations {
            try QuantizeActivationsPass(options: options(QuantizeActivationsPass.Options.self, "{}"))
                .apply(&graph, context: &context)
            try QuantizeKVPass(options: options(QuantizeKVPass.Options.self, "{}")).apply(&graph, context: &context)
        }
        var packed = graph
        try PackWeightsPass(options: .init()).apply(&packed, context: &context)
        return (graph, packed)
    }

    /// Feeds `tokens` to `session` one at a time after the first and checks each step's logits
    /// against the prefill's row (`expected`, rows × vocab): KL below 1e-3 and the same argmax.
    static func expectDecodingMatches(
        _ session: LlamaSession, tokens: [Int], expected: [Float], vocab: Int,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        _ = try session.forward([tokens[0]])
        for (index, token) in tokens.enumerated().dropFirst() {
            let logits = session.logits(try session.forward([token]), rows: 0..<1)
            let row = expected[(index * vocab)..<((index + 1) * vocab)]
            let divergence = kl(row, logits[...])
            #expect(divergence < 1e-3, "token \(index): KL \(divergence)", sourceLocation: sourceLocation)
            #expect(
                logits.indices.max { logits[$0] < logits[$1] } == row.indices.max { row[$0] < row[$1] }! - index
                    * vocab,
                sourceLocation: sourceLocation)
        }
    }

    /// The packed graph's linear layers with their encodings; records an issue for any left unpacked.
    static func packedLinears(_ graph: ModelGraph, sourceLocation: SourceLocation = #_sourceLocation)
        -> [(tensor: Tensor, encoding: PackedIntegerEncoding)]
    {
        let linears = graph.tensors.filter { $0.name.contains("_proj") }
        #expect(linears.count == 14, sourceLocation: sourceLocation)
        return linears.compactMap { tensor in
            guard case .quantized(.packed(let encoding)) = tensor.info.dtype else {
                Issue.record("\(tensor.name) is \(tensor.info.dtype)", sourceLocation: sourceLocation)
                return nil
            }
            return (tensor, encoding)
        }
    }

    /// KL(p ‖ q) of the softmaxes of two logit rows.
    static func kl(_ p: ArraySlice<Float>, _ q: ArraySlice<Float>) -> Double {
        func logSoftmax(_ x: ArraySlice<Float>) -> [Double] {
            let m = Double(x.max()!)
            let sum = x.reduce(0.0) { $0 + exp(Double($1) - m) }
            return x.map { Double($0) - m - log(sum) }
        }
        let (lp, lq) = (logSoftmax(p), logSoftmax(q))
        return zip(lp, lq).reduce(0.0) { $0 + exp($1.0) * ($1.0 - $1.1) }
    }
}

@Suite("Low-bit execution against the simulated path")
struct PackedRuntimeTests {
    static let tokens = [5, 17, 3, 42, 9, 88, 1, 30, 64, 12, 7, 50, 23]

    @Test("the packed graph holds int4/int8 codes for every linear, and packing lost nothing")
    func packedGraph() throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: true)
        for (tensor, encoding) in QuantizedTinyModel.packedLinears(packed) {
            #expect(encoding.bitsPerWeight < 6.5, "\(tensor.name): \(encoding.bitsPerWeight) bits per weight")
            #expect(
                try TensorCodec.decode(tensor) == simulated.tensor(named: tensor.name).storage().values(as: Float.self))
        }
        let weights = try LlamaWeights(packed)
        #expect(
            weights.layers.allSatisfy { $0.qkv.isPacked && $0.o.isPacked && $0.gateUp.isPacked && $0.down.isPacked })
        #expect(try !LlamaWeights(packed, lowBit: false).layers[0].qkv.isPacked)
    }

    @Test(
        "prefill on packed weights with float prompt products is bit-identical to the simulated F32 path, at 1 and 2 threads",
        arguments: [true, false], [1, 2])
    func prefillIdentical(activations: Bool, threads: Int) throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: activations)
        let reference = LlamaSession(
            weights: try LlamaWeights(simulated), maxContext: 32, threads: 1, quantizedCache: false)
        let expected = reference.logits(try reference.forward(Self.tokens), rows: 0..<Self.tokens.count)
        let session = LlamaSession(weights: try LlamaWeights(packed), maxContext: 32, threads: threads)
        session.integerPrompts = false
        let logits = session.logits(try session.forward(Self.tokens), rows: 0..<Self.tokens.count)
        #expect(logits == expected)
    }

    @Test(
        "prefill with the integer GEMM (the default) matches the simulated prefill: KL < 1e-3 per token, the same greedy choices, other arithmetic than the float path"
    )
    func integerPrefillMatches() throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: true)
        let vocab = simulated.config!.vocabSize
        let reference = LlamaSession(
            weights: try LlamaWeights(simulated), maxContext: 32, threads: 1, quantizedCache: false)
        let expected = reference.logits(try reference.forward(Self.tokens), rows: 0..<Self.tokens.count)
        let session = LlamaSession(weights: try LlamaWeights(packed), maxContext: 32, threads: 2)
        #expect(session.integerPrompts)
        let logits = session.logits(try session.forward(Self.tokens), rows: 0..<Self.tokens.count)
        #expect(logits != expected)
        for index in Self.tokens.indices {
            let (want, got) = (
                expected[(index * vocab)..<((index + 1) * vocab)], logits[(index * vocab)..<((index + 1) * vocab)]
            )
            #expect(QuantizedTinyModel.kl(want, got) < 1e-3, "token \(index): KL \(QuantizedTinyModel.kl(want, got))")
            #expect(got.indices.max { got[$0] < got[$1] } == want.indices.max { want[$0] < want[$1] })
        }
    }

    @Test(
        "decoding on packed weights (integer kernels, quantized KV cache) matches the simulated prefill: KL < 1e-3 per token, same greedy choices",
        arguments: [true, false])
    func decodeMatches(activations: Bool) throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: activations)
        let reference = LlamaSession(
            weights: try LlamaWeights(simulated), maxContext: 32, threads: 1, quantizedCache: false)
        let expected = reference.logits(try reference.forward(Self.tokens), rows: 0..<Self.tokens.count)
        let vocab = simulated.config!.vocabSize
        let session = LlamaSession(weights: try LlamaWeights(packed), maxContext: 32, threads: 2)
        // K and V, 2 layers, 32 values each: F32 floats, or per head of 16 six 4-bit and four 8-bit codes
        // plus an F32 scale and an Int16 zero point per part.
        let width = 32
        #expect(session.kvCacheBytesPerToken == (activations ? 2 * 2 * 2 * (6 + 4 + 12) : 2 * 2 * 4 * width))
        try QuantizedTinyModel.expectDecodingMatches(session, tokens: Self.tokens, expected: expected, vocab: vocab)
    }

    @Test(
        "decoding past the context where attention splits into spans (2 threads) still matches the simulated prefill: KL < 1e-3 per token, same greedy choices"
    )
    func longDecodeMatches() throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: true)
        let vocab = simulated.config!.vocabSize
        let tokens = (0..<(LlamaSession.splitAttentionSpan + 12)).map { ($0 * 37 + 5) % vocab }
        let reference = LlamaSession(
            weights: try LlamaWeights(simulated), maxContext: tokens.count, threads: 1, quantizedCache: false)
        let expected = reference.logits(try reference.forward(tokens), rows: 0..<tokens.count)
        let session = LlamaSession(weights: try LlamaWeights(packed), maxContext: tokens.count, threads: 2)
        try QuantizedTinyModel.expectDecodingMatches(session, tokens: tokens, expected: expected, vocab: vocab)
    }
}

@Suite("Grouped weights with zero points and F16 scales (lpack 2.0) against the simulated path")
struct GroupedPackedRuntimeTests {
    @Test("every linear packs with an int8 zero point and an F16 scale per group, losslessly")
    func packedGraph() throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: false, weights: QuantizedTinyModel.grouped)
        for (tensor, encoding) in QuantizedTinyModel.packedLinears(packed) {
            #expect(encoding.zeroPoints && encoding.halfScales, "\(tensor.name): \(encoding)")
            // Two bytes of scale and one of zero point per group.
            #expect(encoding.rowStride == 3 * encoding.slotCount + encoding.rowCodeBytes)
            #expect(encoding.slotCount >= encoding.rowLength / 8)
            #expect(
                try TensorCodec.decode(tensor) == simulated.tensor(named: tensor.name).storage().values(as: Float.self))
        }
    }

    @Test(
        "prefill is bit-identical to the simulated path; decoding (float or integer kernels) stays within KL 1e-3 per token with the same greedy choices",
        arguments: [false, true])
    func matchesSimulation(activations: Bool) throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(
            activations: activations, weights: QuantizedTinyModel.grouped)
        let tokens = PackedRuntimeTests.tokens
        let reference = LlamaSession(
            weights: try LlamaWeights(simulated), maxContext: 32, threads: 1, quantizedCache: false)
        let expected = reference.logits(try reference.forward(tokens), rows: 0..<tokens.count)
        let prefill = LlamaSession(weights: try LlamaWeights(packed), maxContext: 32, threads: 2)
        #expect(prefill.logits(try prefill.forward(tokens), rows: 0..<tokens.count) == expected)
        let vocab = simulated.config!.vocabSize
        let session = LlamaSession(weights: try LlamaWeights(packed), maxContext: 32, threads: 2)
        try QuantizedTinyModel.expectDecodingMatches(session, tokens: tokens, expected: expected, vocab: vocab)
    }
}

@Suite("Verifying decoding")
struct DecodeVerificationTests {
    @Test(
        "verify --decode runs the packed candidate token by token: KL above 0 (other arithmetic) yet below 1e-3, where prefill gives exactly 0"
    )
    func decodeMode() throws {
        let (simulated, packed) = try QuantizedTinyModel.graphs(activations: false, weights: QuantizedTinyModel.grouped)
        let vocab = simulated.config!.vocabSize
        let tokens = (0..<48).map { ($0 * 37 + 5) % vocab }
        func verify(decode: Bool) throws -> VerificationResult {
            try Verifier.compare(
                base: LlamaSession(weights: try LlamaWeights(simulated), maxContext: 16, quantizedCache: false),
                candidate: LlamaSession(weights: try LlamaWeights(packed), maxContext: 16, threads: 2),
                tokens: tokens, context: 16, maxChunks: 3, decode: decode)
        }
        let prefill = try verify(decode: false)
        #expect(prefill.kl.max == 0)
        #expect(prefill.layerErrors.allSatisfy { $0 == 0 })
        let decoded = try verify(decode: true)
        #expect(decoded.scoredTokens == prefill.scoredTokens)
        #expect(decoded.kl.max > 0)
        #expect(decoded.kl.mean < 1e-3, "mean KL \(decoded.kl.mean)")
        #expect(decoded.topOneAgreement == 1)
        #expect(decoded.layerErrors.allSatisfy { $0 < 1e-3 }, "\(decoded.layerErrors)")
    }
}

@Suite("F16 matrices run in place")
struct HalfWeightTests {
    @Test("an F16 output head gives the F32 path's prefill logits exactly and its decode logits to 1e-5")
    func halfHead() throws {
        var graph = try TinyModel.graph()
        let embedding = try graph.tensor(named: "model.embed_tokens.weight")
        var head = try TensorCodec.convert(embedding, to: .f16)
        head.info.name = "lm_head.weight"
        try graph.append(head)
        graph.config?.tiedEmbeddings = false
        let half = try LlamaWeights(graph)
        guard case .half = try #require(half.output) else {
            Issue.record("the head was decoded to F32")
            return
        }
        let floats = try LlamaWeights(graph, lowBit: false)
        let tokens = PackedRuntimeTests.tokens
        for threads in [1, 2] {
            let (a, b) = (
                LlamaSession(weights: half, maxContext: 32, threads: threads),
                LlamaSession(weights: floats, maxContext: 32, threads: threads)
            )
            #expect(
                a.logits(try a.forward(tokens), rows: 0..<tokens.count)
                    == b.logits(try b.forward(tokens), rows: 0..<tokens.count))
            a.reset()
            b.reset()
            let (x, y) = (try a.forward([3]), try b.forward([3]))
            #expect(relativeError(a.logits(x, rows: 0..<1), b.logits(y, rows: 0..<1)) < 1e-5)
        }
    }
}

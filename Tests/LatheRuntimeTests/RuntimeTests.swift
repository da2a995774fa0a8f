import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LatheTestSupport
import LinearAlgebra
import Testing

/// max |a − b| / max |b|, NaN when either side holds a NaN.
func maxRelativeDifference(_ a: [Float], _ b: [Double]) -> Double {
    maxDifference(a.map(Double.init), b) / maxMagnitude(b)
}

@Suite("Llama runtime on a tiny synthetic model")
struct TinyRuntimeTests {
    static let tokens = [5, 17, 3, 42, 9, 88, 1, 30, 64, 12, 7]

    @Test(
        "logits match the loop-based reference to 1e-4 relative (HF layout and GGUF layout)",
        arguments: [TensorNaming.huggingface, .gguf])
    func matchesReference(naming: TensorNaming) throws {
        var graph = try TinyModel.graph()
        if naming == .gguf { graph = try LlamaLayout.toGGUF(graph) }
        let session = LlamaSession(weights: try LlamaWeights(graph), maxContext: 32)
        let hidden = try session.forward(Self.tokens)
        let logits = session.logits(hidden, rows: 0..<Self.tokens.count)
        let reference = try ReferenceLlama(graph).logits(Self.tokens)
        let vocab = graph.config!.vocabSize
        for row in Self.tokens.indices {
            let difference = maxRelativeDifference(Array(logits[(row * vocab)..<((row + 1) * vocab)]), reference[row])
            #expect(difference < 1e-4, "row \(row): \(difference)")
        }
    }

    @Test("an HF model and its GGUF layout (interleaved RoPE) give the same logits to 1e-5 (summation order only)")
    func ropeConventions() throws {
        let graph = try TinyModel.graph()
        let a = LlamaSession(weights: try LlamaWeights(graph), maxContext: 32)
        let b = LlamaSession(weights: try LlamaWeights(LlamaLayout.toGGUF(graph)), maxContext: 32)
        #expect(b.weights.ropeStyle == .interleaved && a.weights.ropeStyle == .halfSplit)
        let la = a.logits(try a.forward(Self.tokens), rows: 0..<Self.tokens.count)
        let lb = b.logits(try b.forward(Self.tokens), rows: 0..<Self.tokens.count)
        #expect(relativeError(lb, la) < 1e-5)
    }

    @Test("prefill and token-by-token decoding agree to 1e-4 relative")
    func prefillMatchesDecode() throws {
        let weights = try LlamaWeights(TinyModel.graph())
        let prefill = LlamaSession(weights: weights, maxContext: 32)
        let all = prefill.logits(try prefill.forward(Self.tokens), rows: 0..<Self.tokens.count)
        let decode = LlamaSession(weights: weights, maxContext: 32)
        var stepwise: [Float] = []
        for token in Self.tokens { stepwise += decode.logits(try decode.forward([token]), rows: 0..<1) }
        #expect(relativeError(stepwise, all) < 1e-4)
        // Split prefill (prompt in two parts) is the same computation again.
        let split = LlamaSession(weights: weights, maxContext: 32)
        _ = try split.forward(Array(Self.tokens.prefix(4)))
        let tail = split.logits(try split.forward(Array(Self.tokens.dropFirst(4))), rows: 0..<(Self.tokens.count - 4))
        #expect(relativeError(tail, Array(all.dropFirst(4 * weights.config.vocabSize))) < 1e-4)
    }

    @Test("prefill gives the same bits at 1, 2 and 3 threads, with every projection cut into several tiles")
    func threadCountsAgree() throws {
        // Widths that make the projections several tiles wide (`LlamaSession.tileColumns`).
        let config = TinyModel.config(hidden: 192, heads: 3, kvHeads: 1, ffn: 768, vocab: 700)
        let weights = try LlamaWeights(TinyModel.graph(config))
        let tokens = (0..<40).map { ($0 * 37) % 700 }
        let logits = try [1, 2, 3].map { threads in
            let session = LlamaSession(weights: weights, maxContext: 64, threads: threads)
            return session.logits(try session.forward(tokens), rows: 0..<tokens.count).map(\.bitPattern)
        }
        #expect(logits[1] == logits[0])
        #expect(logits[2] == logits[0])
    }

    @Test(
        "decoding over a quantized KV cache gives the same bits at 1 and 2 threads, past 64 positions (where attention splits)"
    )
    func quantizedDecodeThreads() throws {
        var graph = try TinyModel.graph()
        var context = PassContext()
        try LatheBuiltins.registry.pass("quantize-kv", options: Data(#"{"bits": 4, "highBits": 4}"#.utf8))
            .apply(&graph, context: &context)
        let weights = try LlamaWeights(graph)
        #expect(weights.quantization.keys != nil, "the cache is quantized")
        let tokens = (0..<80).map { ($0 * 37 + 11) % 96 }
        let logits = try [1, 2].map { threads in
            let session = LlamaSession(weights: weights, maxContext: tokens.count, threads: threads)
            return try tokens.flatMap { token in
                session.logits(try session.forward([token]), rows: 0..<1).map(\.bitPattern)
            }
        }
        let differing = zip(logits[0], logits[1]).filter { $0 != $1 }.count
        #expect(differing == 0, "\(differing) of \(logits[0].count) logits differ")
    }

    @Test("a model that computes NaN is an error naming the chunk, never a KL of 0 or a PPL of nan")
    func nonFiniteOutput() throws {
        let graph = try TinyModel.graph()
        var broken = graph
        try broken.setFloats("model.norm.weight", [Float](repeating: .nan, count: 64))
        let tokens = (0..<64).map { ($0 * 29 + 5) % 96 }
        func session(_ graph: ModelGraph) throws -> LlamaSession {
            LlamaSession(weights: try LlamaWeights(graph), maxContext: 16)
        }
        func names(_ error: any Error, _ subject: String) -> Bool {
            let text = (error as? LatheError)?.errorDescription ?? ""
            return text.hasPrefix(subject) && text.contains("not finite") && text.contains("chunk 1")
        }
        #expect {
            try Verifier.compare(
                base: session(graph), candidate: session(broken), tokens: tokens, context: 16, maxChunks: 2)
        } throws: { names($0, "the candidate's output") }
        #expect {
            try Verifier.compare(
                base: session(broken), candidate: session(graph), tokens: tokens, context: 16, maxChunks: 2)
        } throws: { names($0, "the base model's output") }
        #expect {
            try Perplexity.evaluate(session(broken), tokens: tokens, context: 16, maxChunks: 2, protocol: .llama)
        } throws: { names($0, "the model's output") }
    }

    @Test("the context limit and bad token ids are errors, not crashes")
    func limits() throws {
        let session = LlamaSession(weights: try LlamaWeights(TinyModel.graph()), maxContext: 4)
        #expect(throws: LatheError.self) { try session.forward([1, 2, 3, 4, 5]) }
        #expect(throws: LatheError.self) { try session.forward([1000]) }
    }

    @Test("a model with projection biases is refused, not run without them")
    func biases() throws {
        var graph = try TinyModel.graph()
        try graph.append(
            Tensor(
                info: TensorInfo(name: "model.layers.0.self_attn.q_proj.bias", dtype: .f32, shape: [64]),
                storage: TensorStorage(values: [Float](repeating: 0.5, count: 64))))
        #expect {
            _ = try LlamaWeights(graph)
        } throws: { error in
            (error as? LatheError)?.errorDescription?.contains("'model.layers.0.self_attn.q_proj.bias'") == true
        }
    }

    @Test("a window start (the BOS of a model that asks for one) replaces each chunk's first token, nothing else")
    func windowStart() throws {
        let weights = try LlamaWeights(TinyModel.graph())
        let tokens = (0..<96).map { ($0 * 29 + 5) % 96 }
        let context = 16
        let session = LlamaSession(weights: weights, maxContext: context)
        func perplexity(_ tokens: [Int], start: Int?) throws -> PerplexityResult {
            try Perplexity.evaluate(
                session, tokens: tokens, context: context, maxChunks: nil, protocol: .all, windowStart: start)
        }
        var replaced = tokens
        for chunk in 0..<(tokens.count / context) { replaced[chunk * context] = 0 }
        let started = try perplexity(tokens, start: 0)
        #expect(started.perplexity == (try perplexity(replaced, start: nil)).perplexity)
        #expect(started.perplexity != (try perplexity(tokens, start: nil)).perplexity)
        #expect(started.scoredTokens == (try perplexity(tokens, start: nil)).scoredTokens)
        let verified = try Verifier.compare(
            base: session, candidate: LlamaSession(weights: weights, maxContext: context), tokens: tokens,
            context: context, maxChunks: nil, protocol: .all, windowStart: 0)
        // The verifier scores the same windows (relative 1e-9: the same sums, perhaps in another order).
        #expect(abs(verified.basePerplexity / started.perplexity - 1) < 1e-9)
    }

    @Test("seeded sampling repeats; greedy picks the argmax")
    func sampling() throws {
        let graph = try TinyModel.graph()
        let tokenizer = try BPETokenizer(graph.tokenizer!)
        let session = LlamaSession(weights: try LlamaWeights(graph), maxContext: 64)
        let sampled = { (seed: UInt64) in
            try Generator(
                session: session, tokenizer: tokenizer, sampling: SamplingOptions(temperature: 1, topK: 10, seed: seed)
            )
            .generate(prompt: [5, 6, 7], maxTokens: 12)
        }
        #expect(try sampled(3) == sampled(3))
        let greedy = try Generator(session: session, tokenizer: tokenizer, sampling: SamplingOptions()).generate(
            prompt: [5, 6, 7], maxTokens: 5)
        #expect(greedy.count == 5)
        #expect(session.position == 3 + 4, "the last generated token is not run: nothing reads its logits")
        let reference = try ReferenceLlama(graph).logits([5, 6, 7])
        let argmax = reference[2].indices.max { reference[2][$0] < reference[2][$1] }
        #expect(greedy.first == argmax)
    }

    /// 20 000 draws put a frequency's standard deviation below 0.0036, so ±0.02 is over 5σ.
    @Test("sampling draws from softmax(logits / T) over the top k (frequencies within 0.02 of 20 000 draws)")
    func samplingDistribution() {
        let logits: [Float] = [1, 0, 2, -1, 0.5, 7]
        let vocab = 5  // the sixth logit lies past the vocabulary (padded rows) and is never drawn
        func frequencies(_ options: SamplingOptions, draws: Int = 20_000) -> [Double] {
            var generator = SeededGenerator(seed: options.seed)
            var counts = [Double](repeating: 0, count: logits.count)
            for _ in 0..<draws {
                counts[Generator.sample(logits, vocab: vocab, options: options, generator: &generator)] += 1
            }
            return counts.map { $0 / Double(draws) }
        }
        func softmax(_ tokens: [Int], temperature: Double) -> [Double] {
            var p = [Double](repeating: 0, count: logits.count)
            for t in tokens { p[t] = exp(Double(logits[t]) / temperature) }
            let total = p.reduce(0, +)
            return p.map { $0 / total }
        }
        let cases: [(SamplingOptions, [Double])] = [
            (SamplingOptions(temperature: 1, topK: 0, seed: 1), softmax([0, 1, 2, 3, 4], temperature: 1)),
            (SamplingOptions(temperature: 1, topK: 3, seed: 2), softmax([2, 0, 4], temperature: 1)),
            (SamplingOptions(temperature: 2, topK: 3, seed: 3), softmax([2, 0, 4], temperature: 2)),
            (SamplingOptions(temperature: 0.25, topK: 2, seed: 4), softmax([2, 0], temperature: 0.25)),
        ]
        for (options, expected) in cases {
            let observed = frequencies(options)
            #expect(maxDifference(observed, expected) < 0.02, "\(options): \(observed) against \(expected)")
        }
        // Greedy (temperature 0) ignores the seed; another seed draws another sequence.
        var a = SeededGenerator(seed: 5)
        var b = SeededGenerator(seed: 6)
        let greedy = SamplingOptions(temperature: 0, topK: 3, seed: 5)
        #expect(Generator.sample(logits, vocab: vocab, options: greedy, generator: &a) == 2)
        let warm = SamplingOptions(temperature: 1, topK: 0, seed: 5)
        let first = (0..<64).map { _ in Generator.sample(logits, vocab: vocab, options: warm, generator: &a) }
        let second = (0..<64).map { _ in Generator.sample(logits, vocab: vocab, options: warm, generator: &b) }
        #expect(first != second)
    }
}

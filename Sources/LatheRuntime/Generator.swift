import CKernels
import Foundation
import LatheCore
import LinearAlgebra

/// How the next token is chosen.
public struct SamplingOptions: Sendable {
    /// 0 picks the most likely token (greedy).
    public var temperature: Float
    /// Only the `topK` most likely tokens are candidates (0: all).
    public var topK: Int
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 40, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.seed = seed
    }
}

/// Streams tokens from a prompt with the KV cache: one prefill, then one token per step.
public struct Generator {
    public let session: LlamaSession
    public let tokenizer: BPETokenizer
    public var sampling: SamplingOptions

    public init(session: LlamaSession, tokenizer: BPETokenizer, sampling: SamplingOptions) {
        self.session = session
        self.tokenizer = tokenizer
        self.sampling = sampling
    }

    /// Generates up to `maxTokens` after `prompt`, calling `emit` with each token id; stops at the
    /// end-of-sequence token. Returns the generated ids.
    @discardableResult
    public func generate(prompt: [Int], maxTokens: Int, emit: (Int) -> Void = { _ in }) throws -> [Int] {
        guard !prompt.isEmpty else {
            throw LatheError.invalidValue(field: "prompt", value: "empty", expected: "at least one token")
        }
        var generator = SeededGenerator(seed: sampling.seed)
        session.reset()
        let vocab = session.weights.config.vocabSize
        var hidden = try session.forward(prompt)
        var lastRow = prompt.count - 1
        var output: [Int] = []
        for _ in 0..<maxTokens {
            let logits = session.logits(hidden, rows: lastRow..<(lastRow + 1))
            let next = Self.sample(logits, vocab: vocab, options: sampling, generator: &generator)
            if next == tokenizer.description.eosTokenID { break }
            output.append(next)
            emit(next)
            // The last token is not run: nothing would read its logits.
            guard output.count < maxTokens, session.position < session.maxContext else { break }
            hidden = try session.forward([next])
            lastRow = 0
        }
        return output
    }

    /// The first of the most likely tokens among the first `vocab` logits (greedy decoding), eight
    /// logits at a time: a scalar scan of a 49 152-token vocabulary was a few percent of a decoded
    /// token's time with the low-bit kernels.
    public static func greedyToken(_ logits: [Float], vocab: Int) -> Int {
        precondition(vocab > 0 && vocab <= logits.count, "vocab outside the logits")
        return logits.withUnsafeBufferPointer { Int(lk_argmax($0.baseAddress!, Int32(vocab))) }
    }

    /// Greedy argmax, or a draw from softmax(logits / temperature) restricted to the top-k tokens.
    public static func sample(_ logits: [Float], vocab: Int, options: SamplingOptions, generator: inout SeededGenerator)
        -> Int
    {
        if options.temperature <= 0 { return greedyToken(logits, vocab: vocab) }
        var candidates = Array(0..<vocab)
        if options.topK > 0, options.topK < vocab {
            candidates.sort { logits[$0] > logits[$1] }
            candidates = Array(candidates.prefix(options.topK))
        }
        let maximum = candidates.map { logits[$0] }.max() ?? 0
        let weights = candidates.map { exp(Double((logits[$0] - maximum) / options.temperature)) }
        var target = generator.nextUniform() * weights.reduce(0, +)
        for (index, weight) in zip(candidates, weights) {
            target -= weight
            if target <= 0 { return index }
        }
        return candidates.last ?? 0
    }
}

/// Turns a user message into a prompt with the model's chat template. Lathe does not run Jinja; it
/// recognises the ChatML family (`<|im_start|>role\n…<|im_end|>`), which SmolLM2 uses, and takes the
/// default system prompt from the template text.
public enum ChatTemplate {
    public static func prompt(for message: String, template: String?) throws -> String {
        guard let template else {
            throw LatheError.invalidValue(
                field: "--chat", value: "a model without a chat template",
                expected:
                    "tokenizer.chat_template (GGUF), or chat_template in tokenizer_config.json or chat_template.jinja (HF)"
            )
        }
        guard template.contains("<|im_start|>") else {
            throw LatheError.notImplemented(
                capability: "--chat for this model",
                detail: "only ChatML templates (<|im_start|>…<|im_end|>) are recognised")
        }
        var system = ""
        if let start = template.range(of: "<|im_start|>system\n"),
            let end = template.range(of: "<|im_end|>", range: start.upperBound..<template.endIndex)
        {
            system = "<|im_start|>system\n" + template[start.upperBound..<end.lowerBound] + "<|im_end|>\n"
        }
        return system + "<|im_start|>user\n\(message)<|im_end|>\n<|im_start|>assistant\n"
    }
}

import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LatheTestSupport
import Testing

@testable import FormatSafetensors

@Suite(
    "Tokenizer (llama.cpp semantics, formats.md §5.5)",
    .enabled(if: Fixtures.smolLM2IsAvailable, Comment(rawValue: Fixtures.smolLM2SkipReason)))
struct TokenizerTests {
    static let tokenizer: BPETokenizer? = {
        guard let graph = try? GGUFReader().read(Fixtures.smolLM2, options: ReadOptions()),
            let description = graph.tokenizer
        else { return nil }
        return try? BPETokenizer(description)
    }()

    static let referenceVectors: [(String, [Int])] = [
        (" = Robert Boulter = \n", [446, 6356, 389, 9226, 352, 446, 3717]),
        (
            " \n = Robert Boulter = \n \n Robert Boulter is an English film , television and theatre actor . He had a guest @-@ starring role on the television series The Bill in 2000 . \n",
            [
                3717, 446, 6356, 389, 9226, 352, 446, 3717, 3717, 6356, 389, 9226, 352, 314, 354, 2321, 4771, 3297,
                8552, 284, 16984, 17523, 1673,
                909, 761, 253, 16204, 3394, 29, 48, 45608, 1791, 335, 260, 8552, 3086, 378, 8593, 281, 216, 34, 32, 32,
                32, 1673, 3717,
            ]
        ),
        (
            "Hello world! It's 2024-11-29; cost $3.50 ... naïve café 東京 \t\t tabs\n\n\nend   ",
            [
                19556, 905, 17, 657, 506, 216, 34, 32, 34, 36, 29, 33, 33, 29, 34, 41, 43, 1708, 1885, 35, 30, 37, 32,
                4563, 15486, 46494, 37366,
                17097, 247, 126, 16736, 122, 216, 1656, 29416, 1116, 198, 486, 333,
            ]
        ),
        (
            "<|im_start|>user\nHi<|im_end|>\n",
            [44, 108, 306, 79, 3738, 108, 46, 4093, 198, 26843, 44, 108, 306, 79, 486, 108, 46, 198]
        ),
    ]

    @Test("the reference vectors tokenize to llama.cpp's ids", arguments: referenceVectors)
    func vectors(text: String, ids: [Int]) throws {
        let tokenizer = try #require(Self.tokenizer)
        #expect(tokenizer.encode(text) == ids)
        #expect(tokenizer.decode(ids) == text, "decoding restores the text")
    }

    @Test("llama-bpe (Llama 3's split, whole-token shortcut) gives llama.cpp's ids on 1,500 strings")
    func llamaBPE() throws {
        // Fixtures/llama-bpe-golden.json: llama.cpp on SmolLM2's vocabulary relabelled llama-bpe
        // (Tests/Oracles/llamacpp/make_llama_bpe_golden.py): WikiText lines and seeded fuzz strings.
        let graph = try GGUFReader().read(Fixtures.smolLM2, options: ReadOptions())
        var description = try #require(graph.tokenizer)
        description.preTokenizer = "llama-bpe"
        let tokenizer = try BPETokenizer(description)
        let url = Fixtures.packageRoot.appendingPathComponent("Tests/LatheRuntimeTests/Fixtures/llama-bpe-golden.json")
        let cases = try #require(JSONValue.parse(String(contentsOf: url, encoding: .utf8))["cases"]?.arrayValue)
        #expect(cases.count == 1500)
        var mismatches: [String] = []
        for item in cases {
            let text = try #require(item["text"]?.stringValue)
            let ids = try #require(item["ids"]?.arrayValue).compactMap(\.intValue)
            if tokenizer.encode(text, addSpecial: false) != ids { mismatches.append(text) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) differ, first: \(mismatches.prefix(3))")
    }

    @Test(
        "Hugging Face tokenizers, reading the tokenizer.json Lathe writes, gives Lathe's ids on WikiText and fuzz",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)))
    func huggingFaceTokenizers() throws {
        // An independent implementation (the Rust `tokenizers` package) checks two things at once: the
        // smollm pre-tokenizer on every line of WikiText-2 test and on the llama-bpe golden's strings,
        // and that an HF directory Lathe writes tokenizes in transformers exactly as Lathe does.
        let tokenizer = try #require(Self.tokenizer)
        let graph = try GGUFReader().read(Fixtures.smolLM2, options: ReadOptions())
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let tokenizerJSON = work.appendingPathComponent("tokenizer.json")
        try HFTokenizer.tokenizerJSON(try #require(graph.tokenizer)).serialized()
            .write(to: tokenizerJSON, atomically: true, encoding: .utf8)
        let wikitext = try String(contentsOf: RealModelRuntimeTests.wikitext, encoding: .utf8)
        let golden = Fixtures.packageRoot.appendingPathComponent(
            "Tests/LatheRuntimeTests/Fixtures/llama-bpe-golden.json")
        let fuzz = try #require(JSONValue.parse(String(contentsOf: golden, encoding: .utf8))["cases"]?.arrayValue)
            .compactMap { $0["text"]?.stringValue }
        // Letters and digits added in Unicode 16 (Garay, more hieroglyphs) are \p{L} and \p{N} to
        // llama.cpp's tables and to Lathe's, but not yet to the regex engine `tokenizers` uses, so the two
        // split words holding them differently; those few fuzz strings are left to the llama.cpp golden.
        let unicode16 = { (text: String) in
            text.unicodeScalars.contains { scalar in
                guard let age = scalar.properties.age, age.major >= 16 else { return false }
                return scalar.properties.isAlphabetic || scalar.properties.numericType != nil
            }
        }
        let corpus =
            wikitext.split(separator: "\n", omittingEmptySubsequences: true).map { String($0) + "\n" } + fuzz
            + Self.referenceVectors.map(\.0) + [String(wikitext.prefix(20_000))]
        let strings = corpus.filter { !unicode16($0) }
        #expect(strings.count > 4000 && corpus.count - strings.count <= 20, "\(corpus.count - strings.count) left out")
        let input = work.appendingPathComponent("strings.json")
        try JSONValue.array(strings.map(JSONValue.string)).serialized().write(
            to: input, atomically: true, encoding: .utf8)
        let oracle = try #require(
            try Oracle.json("hf_tokenize.py", [tokenizerJSON.path, input.path]) as? [String: Any])
        let ids = try #require(oracle["ids"] as? [[Int]])
        let decoded = try #require(oracle["decoded"] as? [String])
        try #require(ids.count == strings.count && decoded.count == strings.count)
        var mismatches: [String] = []
        var decodedDiffer: [String] = []
        for (index, text) in strings.enumerated() {
            // HF matches added tokens in any text: Lathe's parse_special.
            let lathe = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
            if lathe != ids[index] { mismatches.append(text) }
            if tokenizer.decode(ids[index]) != decoded[index] { decodedDiffer.append(text) }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(strings.count) differ, first: \(mismatches.prefix(3))")
        #expect(decodedDiffer.isEmpty, "\(decodedDiffer.count) decode differently, first: \(decodedDiffer.prefix(3))")
    }

    @Test("a vocabulary spelling two tokens alike is refused (llama.cpp refuses it too)")
    func duplicateTokens() {
        var description = TinyModel.tokenizer(vocab: 40)
        description.tokens[35] = description.tokens[7]
        #expect {
            try BPETokenizer(description)
        } throws: { error in
            (error as? LatheError)?.errorDescription?.contains("at ids 7 and 35") == true
        }
    }

    @Test("empty tokens, even several and one typed as control, are loaded and never produced (llama.cpp too)")
    func emptyTokens() throws {
        let reference = try BPETokenizer(TinyModel.tokenizer(vocab: 40))
        var description = TinyModel.tokenizer(vocab: 40)
        description.tokens[36] = ""
        description.tokens[37] = ""
        description.tokenTypes[37] = 3
        let tokenizer = try BPETokenizer(description)
        let text = "the quick brown fox <|im_end|>"
        let ids = tokenizer.encode(text, addSpecial: false, parseSpecial: true)
        #expect(!ids.contains(36) && !ids.contains(37) && ids.contains(2))
        // Tokens 36 and 37 are merges of letters: without them the text takes more, shorter tokens.
        #expect(tokenizer.decode(ids) == text)
        #expect(ids.count >= reference.encode(text, addSpecial: false, parseSpecial: true).count)
    }

    @Test("parse_special turns control-token text into its id")
    func special() throws {
        let tokenizer = try #require(Self.tokenizer)
        #expect(
            tokenizer.encode("<|im_start|>user\nHi<|im_end|>\n", parseSpecial: true) == [1, 4093, 198, 26843, 2, 198])
    }

    @Test("bytes missing from the vocabulary are dropped silently")
    func droppedBytes() throws {
        let tokenizer = try #require(Self.tokenizer)
        let ab = tokenizer.encode("ab")
        #expect(tokenizer.encode("a\u{1D}b") == tokenizer.encode("a") + tokenizer.encode("b"))
        #expect(tokenizer.encode("\u{04}").isEmpty)
        #expect(!ab.isEmpty)
    }
}

@Suite("SmolLM2 runtime", .enabled(if: Fixtures.smolLM2IsAvailable, Comment(rawValue: Fixtures.smolLM2SkipReason)))
struct RealModelRuntimeTests {
    static let wikitext = Fixtures.packageRoot.appendingPathComponent("data/wikitext-2/wiki.test.raw")

    @Test("perplexity of a WikiText slice: batched and token-by-token paths agree, and the value is sane")
    func perplexitySlice() throws {
        let graph = try GGUFReader().read(Fixtures.smolLM2, options: ReadOptions())
        let tokenizer = try BPETokenizer(graph.tokenizer!)
        let text = String(decoding: try Data(contentsOf: Self.wikitext).prefix(4000), as: UTF8.self)
        let tokens = tokenizer.encode(text)
        let weights = try LlamaWeights(graph)
        let context = 128
        let result = try Perplexity.evaluate(
            LlamaSession(weights: weights, maxContext: context), tokens: tokens, context: context, maxChunks: 2,
            protocol: .llama)
        #expect(result.scoredTokens == 2 * 63)
        // The independent path: one token at a time through the KV cache.
        let decode = LlamaSession(weights: weights, maxContext: context)
        var nll = 0.0
        for chunk in 0..<2 {
            decode.reset()
            let window = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            for (row, token) in window.dropLast().enumerated() {
                let logits = decode.logits(try decode.forward([token]), rows: 0..<1)
                guard row >= context / 2 else { continue }
                let m = Double(logits.max()!)
                let logSum = log(logits.reduce(0.0) { $0 + exp(Double($1) - m) }) + m
                nll -= Double(logits[window[row + 1]]) - logSum
            }
        }
        let stepwise = exp(nll / Double(2 * 63))
        #expect(isClose(result.perplexity, stepwise, relative: 1e-4))
        // llama.cpp gives 22.30 over 40 chunks of 512; a short slice at context 128 lands nearby.
        #expect(result.perplexity > 10 && result.perplexity < 60, "\(result.perplexity)")
    }

    @Test("a GGUF and its safetensors conversion verify as identical")
    func verifyIdentity() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let converted = work.appendingPathComponent("smol.safetensors")
        let graph = try ModelInput.open(Fixtures.smolLM2)
        let writer = try LatheBuiltins.registry.writer("safetensors")
        let plan = ConversionPlan(defaultType: nil, rules: [])
        let f32 = try plan.apply(to: graph, writer: type(of: writer), diagnostics: .silent)
        _ = try writer.write(f32, to: converted, options: WriteOptions())
        let tokenizer = try BPETokenizer(graph.tokenizer!)
        let tokens = tokenizer.encode(String(decoding: try Data(contentsOf: Self.wikitext).prefix(2000), as: UTF8.self))
        let result = try Verifier.compare(
            base: LlamaSession(weights: try LlamaWeights(graph), maxContext: 64),
            candidate: LlamaSession(weights: try LlamaWeights(ModelInput.open(converted)), maxContext: 64),
            tokens: tokens, context: 64,
            maxChunks: 2)
        #expect(result.kl.max == 0)
        #expect(result.topOneAgreement == 1)
        #expect(result.layerErrors.allSatisfy { $0 == 0 })
        #expect(result.basePerplexity == result.candidatePerplexity)
    }

    @Test("greedy generation: batched prefill and token-by-token feeding produce the same 32 tokens")
    func greedyGeneration() throws {
        let graph = try GGUFReader().read(Fixtures.smolLM2, options: ReadOptions())
        let tokenizer = try BPETokenizer(graph.tokenizer!)
        let weights = try LlamaWeights(graph)
        let prompt = tokenizer.encode(
            try ChatTemplate.prompt(
                for: "What is the capital of France?", template: tokenizer.description.chatTemplate), parseSpecial: true
        )
        let session = LlamaSession(weights: weights, maxContext: 128)
        let generated = try Generator(session: session, tokenizer: tokenizer, sampling: SamplingOptions()).generate(
            prompt: prompt, maxTokens: 32)
        // Independent path: feed the prompt one token at a time, then decode greedily.
        let stepwise = LlamaSession(weights: weights, maxContext: 128)
        var last: [Float] = []
        for token in prompt { last = stepwise.logits(try stepwise.forward([token]), rows: 0..<1) }
        var tokens: [Int] = []
        while tokens.count < generated.count {
            let next = last.indices.max { last[$0] < last[$1] }!
            tokens.append(next)
            last = stepwise.logits(try stepwise.forward([next]), rows: 0..<1)
        }
        #expect(tokens == generated)
        #expect(tokenizer.decode(generated).contains("Paris"), "\(tokenizer.decode(generated))")
    }
}

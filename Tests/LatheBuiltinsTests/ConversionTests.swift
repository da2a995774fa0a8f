import ArgumentParser
import Compression
import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LatheTestSupport
import Testing

@testable import LatheCLI

/// Runs `lathe` with `arguments` in-process; returns the error it ended with, if any.
func runLathe(_ arguments: [String]) -> (any Error)? {
    do {
        var command = try LatheCommand.parseAsRoot(arguments)
        try command.run()
        return nil
    } catch {
        return error
    }
}

func message(_ error: (any Error)?) -> String {
    guard let error else { return "" }
    return LatheCommand.message(for: error)
}

/// Names of the entries of a directory.
func listing(_ url: URL) throws -> [String] { try FileManager.default.contentsOfDirectory(atPath: url.path).sorted() }

@Suite("Conversions")
struct ConversionTests {
    @Test("HF directory → GGUF → HF directory keeps every config field, the tokenizer and every value")
    func huggingFaceRoundTrip() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        // An HF directory with bf16 weights and config fields Lathe does not map.
        let source = work.appendingPathComponent("hf")
        var graph = try TinyModel.graph()
        for tensor in graph.tensors where tensor.info.shape.rank == 2 {
            try graph.replace(TensorCodec.convert(tensor, to: .bf16))
        }
        _ = try LatheBuiltins.registry.writer("hf").write(graph, to: source, options: WriteOptions())
        let configURL = source.appendingPathComponent("config.json")
        var config = try JSONValue.parse(String(contentsOf: configURL, encoding: .utf8)).objectValue ?? []
        config.removeAll { $0.key == "torch_dtype" }  // written by Lathe too; kept as the source gives it
        config += [
            ("initializer_range", .number("0.02")), ("torch_dtype", .string("bfloat16")),
            ("transformers_version", .string("4.44.0")),
        ]
        try Data(JSONValue.object(config).serialized().utf8).write(to: configURL)

        #expect(runLathe(["convert", source.path, "-o", work.appendingPathComponent("m.gguf").path]) == nil)
        #expect(
            runLathe([
                "convert", work.appendingPathComponent("m.gguf").path, "-o", work.appendingPathComponent("back").path,
            ]) == nil)
        let back = work.appendingPathComponent("back")
        #expect(
            try listing(back) == [
                "config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            ])
        let original = try JSONValue.parse(String(contentsOf: configURL, encoding: .utf8))
        let restored = try JSONValue.parse(
            String(contentsOf: back.appendingPathComponent("config.json"), encoding: .utf8))
        for (key, value) in original.objectValue ?? [] { #expect(restored[key] == value, "config.json field \(key)") }
        for file in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            #expect(
                try Data(contentsOf: source.appendingPathComponent(file))
                    == Data(contentsOf: back.appendingPathComponent(file)), "\(file)")
        }
        let a = try ModelInput.open(source)
        let b = try ModelInput.open(back)
        let comparison = try ModelComparison(a, b)
        #expect(comparison.identical, "\(comparison.text(all: false))")
        // The carried files are compared by what they say: config.json re-indented as transformers
        // writes it, and merges written as pairs (tokenizers ≥ 0.20), are the same files; a changed
        // value is not.
        let reformatted = work.appendingPathComponent("reformatted")
        try FileManager.default.copyItem(at: back, to: reformatted)
        let configObject = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL))
        try JSONSerialization.data(withJSONObject: configObject, options: [.prettyPrinted, .sortedKeys])
            .write(to: reformatted.appendingPathComponent("config.json"))
        let tokenizerURL = reformatted.appendingPathComponent("tokenizer.json")
        var tokenizerJSON = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: tokenizerURL)) as? [String: Any])
        var model = try #require(tokenizerJSON["model"] as? [String: Any])
        let merges = try #require(model["merges"] as? [String])
        try #require(!merges.isEmpty)
        model["merges"] = merges.map { $0.split(separator: " ").map(String.init) }
        tokenizerJSON["model"] = model
        try JSONSerialization.data(withJSONObject: tokenizerJSON).write(to: tokenizerURL)
        let sameFiles = try ModelComparison(b, ModelInput.open(reformatted))
        #expect(sameFiles.identical, "\(sameFiles.text(all: false))")
        // Pairs exist so that a merge's parts may hold spaces: ["a b", "c"] and ["a", "b c"] differ.
        func carrying(_ merges: String) throws -> ModelGraph {
            var graph = try ModelGraph(source: "merges")
            graph.metadata["tokenizer.huggingface.json"] = .string(#"{"model":{"merges":\#(merges)}}"#)
            return graph
        }
        #expect(try ModelComparison(carrying(#"[["a b","c"]]"#), carrying(#"[["a","b c"]]"#)).changedKeys.count == 1)
        #expect(try ModelComparison(carrying(#"["a b"]"#), carrying(#"[["a","b"]]"#)).identical)
        let generationURL = reformatted.appendingPathComponent("generation_config.json")
        var generation = try #require(
            JSONSerialization.jsonObject(with: Data(contentsOf: generationURL)) as? [String: Any])
        generation["lathe_test_value"] = 1
        try JSONSerialization.data(withJSONObject: generation).write(to: generationURL)
        let changed = try ModelComparison(b, ModelInput.open(reformatted))
        #expect(changed.changedKeys.count == 1 && changed.changedKeys.allSatisfy(ModelComparison.isCarriedFile))
        // A GGUF that never was an HF directory lacks the HF files a directory made from it carries
        // (config.json's own text and so on): that alone is not a difference.
        let plain = work.appendingPathComponent("plain.gguf")
        _ = try GGUFWriter().write(graph, to: plain, options: WriteOptions())
        #expect(runLathe(["convert", plain.path, "-o", work.appendingPathComponent("plain-hf").path]) == nil)
        let plainHF = try ModelInput.open(work.appendingPathComponent("plain-hf"))
        #expect(plainHF.metadata.keys.contains { ModelComparison.isCarriedFile($0) })
        let fromGGUF = try ModelComparison(ModelInput.open(plain), plainHF)
        #expect(fromGGUF.identical, "\(fromGGUF.text(all: false))")
        // ... but it is said: the carried files one side has are listed as not counted.
        let carried = plainHF.metadata.keys.filter(ModelComparison.isCarriedFile).sorted()
        #expect(fromGGUF.carriedInOne.sorted() == carried)
        #expect(fromGGUF.text(all: false).contains("not counted: source files carried by one model only"))
    }

    @Test(
        "GGUF stores a half-precision checkpoint's vectors as F32, exactly, as llama.cpp's converter; a rule still chooses"
    )
    func vectorsForLlamaCpp() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        var graph = try TinyModel.graph()
        for tensor in graph.tensors { try graph.replace(TensorCodec.convert(tensor, to: .bf16)) }
        let source = work.appendingPathComponent("bf16.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: source, options: WriteOptions())
        let output = work.appendingPathComponent("m.gguf")
        #expect(runLathe(["convert", source.path, "-o", output.path]) == nil)
        let written = try ModelInput.open(output)
        for tensor in graph.tensors {
            let back = try written.tensor(named: tensor.name)
            #expect(back.info.dtype == (tensor.info.shape.rank == 1 ? .f32 : .bf16), "\(tensor.name)")
            #expect(try TensorCodec.decode(back) == TensorCodec.decode(tensor), "\(tensor.name)")
        }
        let ruled = work.appendingPathComponent("ruled.gguf")
        #expect(runLathe(["convert", source.path, "-o", ruled.path, "--tensor-type", "ffn_norm=bf16"]) == nil)
        let ruledGraph = try ModelInput.open(ruled, options: ReadOptions(naming: .gguf))
        #expect(ruledGraph["blk.0.ffn_norm.weight"]?.info.dtype == .bf16)
        #expect(ruledGraph["blk.0.attn_norm.weight"]?.info.dtype == .f32)
        // The other way, blocks safetensors cannot hold fall back to F32, and the warning names them.
        let quantized = work.appendingPathComponent("q8.gguf")
        #expect(runLathe(["convert", source.path, "-o", quantized.path, "--type", "q8_0"]) == nil)
        let back = try LatheProcess.capture(
            ["convert", quantized.path, "-o", work.appendingPathComponent("back.safetensors").path])
        #expect(back.status == 0, "\(back.errors)")
        let matrices = graph.tensors.filter { $0.info.shape.rank == 2 }.count
        #expect(
            back.errors.contains("\(matrices) tensor(s) converted to F32, which safetensors can store: ")
                && back.errors.contains("(Q8_0)") && back.errors.contains("and \(matrices - 3) more"), "\(back.errors)")
    }

    @Test(
        "GGUF pads a token list shorter than the embedding with [PADn] and refuses a longer one; check refuses it too")
    func vocabularyFit() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        // Shorter: an embedding of two more rows than tokens (HF models round the matrix up).
        var padded = try TinyModel.graph()
        let config = try #require(padded.config)
        let tokens = try #require(padded.tokenizer).tokens.count
        let embedding = try padded.floats("model.embed_tokens.weight")
        padded.config?.vocabSize += 2
        try padded.replace(
            Tensor(
                info: TensorInfo(
                    name: "model.embed_tokens.weight", dtype: .f32, shape: [config.vocabSize + 2, config.hiddenSize]),
                storage: TensorStorage(values: embedding + [Float](repeating: 0, count: 2 * config.hiddenSize))))
        // A SentencePiece-style score per token, as llama.cpp's converter pads it.
        padded.metadata["tokenizer.ggml.scores"] = .array(.float32, (0..<tokens).map { .float32(-Float($0)) })
        let paddedURL = work.appendingPathComponent("padded.gguf")
        _ = try LatheBuiltins.registry.writer("gguf").write(padded, to: paddedURL, options: WriteOptions())
        let paddedGraph = try ModelInput.open(paddedURL)
        let read = try #require(paddedGraph.tokenizer)
        #expect(read.tokens.count == tokens + 2)
        #expect(Array(read.tokens.suffix(2)) == ["[PAD\(tokens)]", "[PAD\(tokens + 1)]"])
        #expect(read.tokenTypes.count == tokens + 2 && Array(read.tokenTypes.suffix(2)) == [5, 5])
        let scores = try #require(paddedGraph.metadata["tokenizer.ggml.scores"]?.arrayValue)
        #expect(scores.count == tokens + 2 && scores.last == .float32(-1000))
        // The pads are not a difference between a model and its GGUF (diff, verify).
        #expect(
            ModelComparison.compare(padded.tokenizer, read).isEmpty,
            "\(ModelComparison.compare(padded.tokenizer, read))")

        // Longer: a token added to the tokenizer without resizing the model.
        var longer = try TinyModel.graph()
        longer.tokenizer?.tokens.append("<added>")
        if longer.tokenizer?.tokenTypes.isEmpty == false { longer.tokenizer?.tokenTypes.append(4) }
        let refused = work.appendingPathComponent("longer.gguf")
        #expect {
            try LatheBuiltins.registry.writer("gguf").write(longer, to: refused, options: WriteOptions())
        } throws: { error in
            let text = (error as? LatheError)?.errorDescription ?? "\(error)"
            return text.contains("tokenizer.ggml.tokens") && text.contains("\(tokens + 1) tokens")
                && text.contains("has \(tokens) rows")
        }
        #expect(!FileManager.default.fileExists(atPath: refused.path))
        let stored = work.appendingPathComponent("longer.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(longer, to: stored, options: WriteOptions())
        let checked = message(runLathe(["check", stored.path]))
        #expect(checked.contains("the tokenizer has \(tokens + 1) tokens"), "\(checked)")
    }

    @Test("a RoPE scaling llama.cpp has no type for (dynamic) goes to Lathe's keys, said, and back to config.json")
    func unknownRopeScaling() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        var graph = try TinyModel.graph()
        graph.config?.ropeScaling = LlamaConfig.RopeScaling(type: "dynamic", factor: 2)
        let source = work.appendingPathComponent("hf")
        _ = try LatheBuiltins.registry.writer("hf").write(graph, to: source, options: WriteOptions())
        let log = WarningLog()
        _ = try Convert.prepareGGUF(ModelInput.open(source), forLlamaCpp: true, diagnostics: log.diagnostics)
        #expect(log.messages.contains { $0.contains("RoPE scaling 'dynamic'") }, "\(log.messages)")
        let gguf = work.appendingPathComponent("m.gguf")
        #expect(runLathe(["convert", source.path, "-o", gguf.path, "--for-llama-cpp"]) == nil)
        // llama.cpp's loader aborts on a scaling type it does not know.
        let file = try ModelInput.open(gguf, options: ReadOptions(naming: .gguf))
        #expect(file.metadata["llama.rope.scaling.type"] == nil && file.metadata["llama.rope.scaling.factor"] == nil)
        #expect(file.config?.ropeScaling == graph.config?.ropeScaling)
        let back = work.appendingPathComponent("back")
        #expect(runLathe(["convert", gguf.path, "-o", back.path]) == nil)
        #expect(try ModelInput.open(back).config?.ropeScaling == graph.config?.ropeScaling)
    }

    @Test(
        "llama3 RoPE scaling: GGUF gets llama.cpp's rope_freqs tensor and no scaling type it would refuse; HF gets it back"
    )
    func llama3RopeScaling() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        var graph = try TinyModel.graph()
        // Llama 3.1's factors, with an original context short enough that the tiny model's eight
        // frequencies (head dim 16, base 10,000) fall in all three bands.
        graph.config?.ropeScaling = LlamaConfig.RopeScaling(
            type: "llama3", factor: 8, originalContextLength: 64, lowFrequencyFactor: 1, highFrequencyFactor: 4)
        let source = work.appendingPathComponent("hf")
        _ = try LatheBuiltins.registry.writer("hf").write(graph, to: source, options: WriteOptions())
        let gguf = work.appendingPathComponent("m.gguf")
        #expect(runLathe(["convert", source.path, "-o", gguf.path]) == nil)
        let file = try ModelInput.open(gguf, options: ReadOptions(naming: .gguf))
        #expect(file.metadata["llama.rope.scaling.type"] == nil, "llama.cpp asserts on an unknown type")
        let factors = try TensorCodec.decode(file.tensor(named: "rope_freqs.weight"))
        let config = try #require(graph.config)
        // θᵢ = 10000^(−2i/16); wavelength 2π/θᵢ against 64/4 = 16 and 64/1 = 64.
        let expected = (0..<(config.headDim / 2)).map { i -> Float in
            let wavelength = 2 * Double.pi / pow(10_000, -2 * Double(i) / Double(config.headDim))
            if wavelength < 16 { return 1 }
            if wavelength > 64 { return 8 }
            let smooth = (64 / wavelength - 1) / 3
            return Float(1 / ((1 - smooth) / 8 + smooth))
        }
        #expect(factors == expected)
        #expect(Set(expected).count >= 3, "the test covers all three bands: \(expected)")

        // Back to HF: the scaling returns to config.json and the tensor, derivable from it, is dropped.
        let back = work.appendingPathComponent("back")
        #expect(runLathe(["convert", gguf.path, "-o", back.path]) == nil)
        let restored = try ModelInput.open(back)
        #expect(restored.config?.ropeScaling == config.ropeScaling)
        #expect(restored["rope_freqs.weight"] == nil)
        // Newer config.json files fold the scaling into rope_parameters.
        let configURL = back.appendingPathComponent("config.json")
        var fields = try JSONValue.parse(String(contentsOf: configURL, encoding: .utf8)).objectValue ?? []
        let scalingEntry = try #require(fields.first { $0.key == "rope_scaling" }?.value.objectValue)
        fields = fields.filter { $0.key != "rope_scaling" && $0.key != "rope_theta" }
        fields.append(("rope_parameters", .object(scalingEntry + [("rope_theta", .number("10000.0"))])))
        try Data(JSONValue.object(fields).serialized().utf8).write(to: configURL)
        let folded = try ModelInput.open(back)
        #expect(folded.config?.ropeScaling == config.ropeScaling)
        #expect(folded.config?.ropeBase == 10_000)

        // The runtime computes the same logits from the config (HF), from the GGUF, and from the
        // tensor alone (a llama.cpp-converted file, which has no Lathe keys).
        var tensorOnly = file
        for key in tensorOnly.metadata.keys where key.hasPrefix(LlamaConfig.RopeScaling.lathePrefix) {
            tensorOnly.metadata[key] = nil
        }
        tensorOnly.config?.ropeScaling = nil
        var unscaled = try ModelInput.open(source)
        unscaled.config?.ropeScaling = nil
        let tokens = Array(0..<40).map { $0 * 7 % config.vocabSize }
        let reference = try logits(ModelInput.open(source), tokens)
        #expect(scaledError(try logits(file, tokens), reference) < 1e-5)
        #expect(scaledError(try logits(tensorOnly, tokens), reference) < 1e-5)
        #expect(scaledError(try logits(unscaled, tokens), reference) > 1e-3, "the scaling changes the model")
        // Such a file cannot become an HF directory: config.json would lose the scaling.
        let llamaCppStyle = work.appendingPathComponent("llama-cpp-style.gguf")
        _ = try GGUFWriter().write(tensorOnly, to: llamaCppStyle, options: WriteOptions())
        let error = runLathe(["convert", llamaCppStyle.path, "-o", work.appendingPathComponent("lost").path])
        #expect(
            message(error).contains("RoPE frequency factors without the rope_scaling parameters"), "\(message(error))")
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("lost").path))
    }

    @Test(
        "tokenizer.json: Llama 3's split is recorded as llama-bpe and written back; SentencePiece-style BPE is not mapped"
    )
    func tokenizerKinds() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("hf")
        _ = try LatheBuiltins.registry.writer("hf").write(TinyModel.graph(), to: source, options: WriteOptions())
        let tokenizerURL = source.appendingPathComponent("tokenizer.json")
        let original = try JSONValue.parse(String(contentsOf: tokenizerURL, encoding: .utf8))
        func rewrite(_ edit: (inout [(key: String, value: JSONValue)]) -> Void) throws {
            var fields = original.objectValue ?? []
            edit(&fields)
            try Data(JSONValue.object(fields).serialized().utf8).write(to: tokenizerURL)
        }
        // Llama 3.x's pre-tokenizer, as its tokenizer.json spells it.
        let llama3 = JSONValue.object([
            ("type", .string("Sequence")),
            (
                "pretokenizers",
                .array([
                    .object([
                        ("type", .string("Split")),
                        (
                            "pattern",
                            .object([
                                (
                                    "Regex",
                                    .string(
                                        #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
                                    )
                                )
                            ])
                        ), ("behavior", .string("Isolated")), ("invert", .bool(false)),
                    ]),
                    .object([
                        ("type", .string("ByteLevel")), ("add_prefix_space", .bool(false)),
                        ("trim_offsets", .bool(true)), ("use_regex", .bool(false)),
                    ]),
                ])
            ),
        ])
        try rewrite { fields in fields = fields.map { $0.key == "pre_tokenizer" ? ($0.key, llama3) : $0 } }
        let gguf = work.appendingPathComponent("llama3.gguf")
        #expect(runLathe(["convert", source.path, "-o", gguf.path]) == nil)
        let file = try ModelInput.open(gguf)
        #expect(file.metadata["tokenizer.ggml.pre"] == .string("llama-bpe"))
        // A GGUF without the HF files: the tokenizer.json written for it splits the same way.
        var bare = file
        for key in bare.metadata.keys where ModelComparison.isCarriedFile(key) { bare.metadata[key] = nil }
        let back = work.appendingPathComponent("back")
        _ = try LatheBuiltins.registry.writer("hf").write(bare, to: back, options: WriteOptions())
        let written = try JSONValue.parse(
            String(contentsOf: back.appendingPathComponent("tokenizer.json"), encoding: .utf8))
        #expect(written["pre_tokenizer"] == llama3)
        // A pre-tokenizer the runtime does not implement is refused rather than run as GPT-2's.
        var qwen = try #require(file.tokenizer)
        qwen.preTokenizer = "qwen2"
        #expect {
            _ = try BPETokenizer(qwen)
        } throws: { error in
            (error as? LatheError)?.errorDescription?.contains("'qwen2' pre-tokenizer") == true
        }

        // A hostile id is an error, not an overflow.
        try rewrite { fields in
            fields = fields.map { field in
                guard field.key == "model", case .object(var model) = field.value else { return field }
                model = model.map { entry in
                    guard entry.key == "vocab", case .object(var vocab) = entry.value else { return entry }
                    vocab.append(("huge", .int(Int.max)))
                    return (entry.key, .object(vocab))
                }
                return (field.key, .object(model))
            }
        }
        let huge = runLathe(["inspect", source.path])
        #expect(message(huge).contains("token ids are not contiguous from 0"), "\(message(huge))")

        // Llama 2 style: byte fallback and '▁' for spaces. The weights read; the tokenizer is not mapped.
        try rewrite { fields in
            fields = fields.map { field in
                guard field.key == "model", case .object(var model) = field.value else { return field }
                model = model.map { $0.key == "byte_fallback" ? ($0.key, .bool(true)) : $0 }
                return (field.key, .object(model))
            }
        }
        let warnings = WarningLog()
        let graph = try ModelInput.open(source, options: ReadOptions(diagnostics: warnings.diagnostics))
        #expect(graph.tokenizer == nil)
        #expect(warnings.messages.contains { $0.contains("SentencePiece-style BPE") }, "\(warnings.messages)")
        #expect(graph.tensors.count == (try TinyModel.graph()).tensors.count)
    }

    @Test(
        "GGUF → safetensors → GGUF reproduces SmolLM2 byte for byte",
        .enabled(if: Fixtures.smolLM2IsAvailable, Comment(rawValue: Fixtures.smolLM2SkipReason)))
    func realRoundTrip() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let st = work.appendingPathComponent("smol.safetensors").path
        let gguf = work.appendingPathComponent("smol.gguf").path
        #expect(runLathe(["convert", Fixtures.smolLM2.path, "-o", st]) == nil)
        #expect(runLathe(["convert", st, "-o", gguf, "--type", "q4_1", "--tensor-type", "token_embd=q8_0"]) == nil)
        #expect(try Data(contentsOf: URL(fileURLWithPath: gguf)) == Data(contentsOf: Fixtures.smolLM2))
        let stGraph = try ModelInput.open(URL(fileURLWithPath: st))
        #expect(stGraph.tensors.allSatisfy { $0.info.dtype == .f32 })
        // Every key of the GGUF (33, as gguf-py counts them in RealModelTests) is kept in the safetensors file.
        #expect(stGraph.metadata.count == (try ModelInput.open(Fixtures.smolLM2)).metadata.count)
    }
}

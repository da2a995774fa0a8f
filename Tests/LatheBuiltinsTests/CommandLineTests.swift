import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheRuntime
import LatheTestSupport
import Testing

@testable import LatheCLI

/// The commands that print results, run as a user runs them (a separate `lathe` process), with their
/// output checked against the library computing the same thing in this process.
@Suite(
    "Commands end to end", .serialized,
    .enabled(if: LatheProcess.isAvailable, Comment(rawValue: LatheProcess.skipReason)))
struct CommandLineTests {
    static let prompt = "the quick brown fox"

    /// The tiny model as a safetensors file in `work`, and the model itself.
    func tinyModel(in work: URL) throws -> (url: URL, graph: ModelGraph) {
        let url = work.appendingPathComponent("tiny.safetensors")
        return (url, try writeTiny(to: url))
    }

    @Test("run prints the greedy continuation the runtime computes, and only that, on stdout")
    func runGreedy() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, graph) = try tinyModel(in: work)
        let tokenizer = try BPETokenizer(try #require(graph.tokenizer))
        let prompt = tokenizer.encode(Self.prompt, addSpecial: true)
        let session = LlamaSession(weights: try LlamaWeights(graph), maxContext: prompt.count + 12)
        let expected = try Generator(session: session, tokenizer: tokenizer, sampling: SamplingOptions())
            .generate(prompt: prompt, maxTokens: 12)
        #expect(!expected.isEmpty)
        let result = try LatheProcess.capture(["run", url.path, "-p", Self.prompt, "-n", "12", "--stats"])
        #expect(result.status == 0, "\(result.errors)")
        #expect(result.output == tokenizer.decode(expected, skipSpecial: true) + "\n")
        // --stats goes to stderr: the prompt's token count and the tokens generated after the first.
        #expect(
            result.errors.contains("prompt \(prompt.count) tokens")
                && result.errors.contains("\(expected.count - 1) more tokens"), "\(result.errors)")
    }

    @Test("run refuses a prompt longer than the model's context and bad sampling options, in one line")
    func runRefusals() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, _) = try tinyModel(in: work)
        let context = TinyModel.config().contextLength
        let long = Array(repeating: "ab", count: context).joined(separator: " ")
        let tooLong = try LatheProcess.capture(["run", url.path, "-p", long, "-n", "1"])
        #expect(tooLong.status == 1)
        #expect(tooLong.errors.contains("the model's context is \(context) tokens"), "\(tooLong.errors)")
        #expect(tooLong.output.isEmpty)
        // --chat on a model without a template says so (it read "not built yet").
        var plain = try TinyModel.graph()
        plain.tokenizer?.chatTemplate = nil
        plain.metadata["tokenizer.chat_template"] = nil
        let plainURL = work.appendingPathComponent("plain.gguf")
        _ = try LatheBuiltins.registry.writer("gguf").write(plain, to: plainURL, options: WriteOptions())
        let noTemplate = try LatheProcess.capture(["run", plainURL.path, "-p", Self.prompt, "--chat", "-n", "1"])
        #expect(noTemplate.status == 1 && noTemplate.errors.contains("a model without a chat template"))
        for (option, expected) in [
            ("-n=-1", "-n must be at least 0"), ("-n=9223372036854775807", "-n must be at least 0 and at most"),
            ("--temperature=nan", "--temperature must be a finite number, 0 or more"),
            ("--top-k=-2", "--top-k must be at least 0"),
        ] {
            let refused = try LatheProcess.capture(["run", url.path, "-p", Self.prompt, option])
            #expect(refused.status == 64, "a usage error (EX_USAGE)")
            #expect(refused.errors.hasPrefix("Error: \(expected)"), "\(option): \(refused.errors)")
            #expect(refused.output.isEmpty)
        }
    }

    @Test("run says when the context cut generation short, and warns of more threads than cores")
    func runNotices() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, graph) = try tinyModel(in: work)
        let tokenizer = try BPETokenizer(try #require(graph.tokenizer))
        let context = TinyModel.config().contextLength
        var words = context
        var prompt = ""
        repeat {
            words -= 1
            prompt = Array(repeating: "ab", count: words).joined(separator: " ")
        } while tokenizer.encode(prompt, addSpecial: true).count > context - 3
        let cut = try LatheProcess.capture(["run", url.path, "-p", prompt, "-n", "20"])
        #expect(cut.status == 0, "\(cut.errors)")
        #expect(cut.errors.contains("of -n 20: the context is full (\(context) tokens)"), "\(cut.errors)")
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let many = try LatheProcess.capture([
            "run", url.path, "-p", Self.prompt, "-n", "1", "--threads", "\(cores + 1)",
        ])
        #expect(
            many.status == 0 && many.errors.contains("is more than this machine's \(cores) cores"), "\(many.errors)")
        let zero = try LatheProcess.capture(["run", url.path, "-p", Self.prompt, "--threads", "0"])
        #expect(zero.status == 64 && zero.errors.contains("--threads must be at least 1"))
    }

    @Test("eval ppl --json prints the perplexity the runtime computes (relative 1e-6) as valid JSON")
    func evalPerplexity() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, graph) = try tinyModel(in: work)
        let text = work.appendingPathComponent("text.txt")
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog"]
        try (0..<200).map { words[($0 * 5 + $0 / 3) % words.count] }.joined(separator: " ")
            .write(to: text, atomically: true, encoding: .utf8)
        let tokenizer = try BPETokenizer(try #require(graph.tokenizer))
        let tokens = try tokenizer.encodeFile(text, purpose: "text file")
        let session = LlamaSession(weights: try LlamaWeights(graph), maxContext: 64)
        let expected = try Perplexity.evaluate(
            session, tokens: tokens, context: 64, maxChunks: 3, protocol: .all, windowStart: tokenizer.windowStart)
        let result = try LatheProcess.capture([
            "eval", "ppl", url.path, "--text", text.path, "--ctx", "64", "--chunks", "3", "--protocol", "all", "--json",
        ])
        #expect(result.status == 0, "\(result.errors)")
        let json = try JSONValue.parse(result.output)
        #expect(json["chunks"] == .int(3) && json["scored_tokens"] == .int(expected.scoredTokens))
        #expect(json["text_tokens"] == .int(tokens.count))
        let perplexity = try #require(json["perplexity"]?.doubleValue)
        // The JSON keeps six decimals; the value is near the vocabulary size (96) for random weights.
        #expect(isClose(perplexity, expected.perplexity, relative: 1e-6, absolute: 1e-6))
        // The text may come from a pipe (/dev/stdin here), read to its end: the same perplexity.
        let piped = Process()
        piped.executableURL = URL(fileURLWithPath: "/bin/sh")
        piped.arguments = [
            "-c", #"cat "$1" | "$0" eval ppl "$2" --text /dev/stdin --ctx 64 --chunks 3 --protocol all --json"#,
            LatheProcess.binary.path, text.path, url.path,
        ]
        let pipe = Pipe()
        piped.standardOutput = pipe
        piped.standardError = FileHandle.nullDevice
        try piped.run()
        let pipedOutput = pipe.fileHandleForReading.readDataToEndOfFile()
        piped.waitUntilExit()
        #expect(piped.terminationStatus == 0)
        #expect(try JSONValue.parse(String(decoding: pipedOutput, as: UTF8.self))["perplexity"] == json["perplexity"])
        // Too few tokens for one chunk is an error naming the counts, not a perplexity of nothing.
        let short = try LatheProcess.capture(["eval", "ppl", url.path, "--text", text.path, "--ctx", "4096"])
        #expect(short.status == 1 && short.output.isEmpty)
        #expect(short.errors.contains("\(tokens.count)"), "\(short.errors)")
    }

    @Test("check --values counts non-finite values per tensor and exits 1; a clean file exits 0")
    func checkValues() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        var graph = try TinyModel.graph()
        let name = "model.layers.1.mlp.down_proj.weight"
        var values = try graph.floats(name)
        values[3] = .nan
        values[70] = .infinity
        values[71] = -.infinity
        try graph.setFloats(name, values)
        let damaged = work.appendingPathComponent("damaged.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: damaged, options: WriteOptions())
        let result = try LatheProcess.capture(["check", damaged.path, "--values", "--json"])
        #expect(result.status == 1)
        let json = try JSONValue.parse(result.output)
        #expect(json["non_finite"] == .object([(name, .int(3))]))
        let (clean, _) = try tinyModel(in: work)
        let fine = try LatheProcess.capture(["check", clean.path, "--values", "--json"])
        #expect(fine.status == 0, "\(fine.errors)")
        #expect(try JSONValue.parse(fine.output)["non_finite"] == .object([]))
        #expect(try JSONValue.parse(fine.output)["intact"] == .bool(true))
        // Without --values nothing was decoded: null, not "none found".
        let unchecked = try LatheProcess.capture(["check", damaged.path, "--json"])
        #expect(unchecked.status == 0, "\(unchecked.errors)")
        #expect(try JSONValue.parse(unchecked.output)["non_finite"] == .null)
        // A config no model can have (2^20 layers) is damage too: the passes and the runtime refuse it.
        var broken = try TinyModel.graph()
        broken.config?.layerCount = 1 << 20
        let brokenURL = work.appendingPathComponent("broken.gguf")
        _ = try LatheBuiltins.registry.writer("gguf").write(broken, to: brokenURL, options: WriteOptions())
        let refused = try LatheProcess.capture(["check", brokenURL.path])
        #expect(refused.status == 1)
        #expect(refused.errors.contains("\(brokenURL.path): Llama config: layer count"), "\(refused.errors)")
        // With --json the verdict is on stdout too, for a script.
        let refusedJSON = try LatheProcess.capture(["check", brokenURL.path, "--json"])
        let verdict = try JSONValue.parse(refusedJSON.output)
        #expect(refusedJSON.status == 1 && verdict["intact"] == .bool(false))
        #expect(verdict["error"]?.stringValue?.contains("layer count") == true, "\(refusedJSON.output)")
        // Another architecture is a container here, not a broken Llama: llama.cpp writes Mamba with no
        // heads. A Llama's unstated context length (0) is unknown, not damage.
        for (architecture, change) in [
            ("mamba", { (c: inout LlamaConfig) in (c.headCount, c.ffnSize) = (0, 0) }),
            ("llama", { (c: inout LlamaConfig) in c.contextLength = 0 }),
        ] {
            var other = try TinyModel.graph()
            other.config?.architecture = architecture
            change(&other.config!)
            let otherURL = work.appendingPathComponent("\(architecture).gguf")
            _ = try LatheBuiltins.registry.writer("gguf").write(other, to: otherURL, options: WriteOptions())
            let accepted = try LatheProcess.capture(["check", otherURL.path])
            #expect(accepted.status == 0, "\(architecture): \(accepted.errors)")
        }
        // A config within bounds but not the tensors' own: one layer too many, a vocabulary too large.
        for (change, expected) in [
            ({ (c: inout LlamaConfig) in c.layerCount += 1 }, "layer 2 has no tensors"),
            ({ (c: inout LlamaConfig) in c.layerCount -= 1 }, "tensors exist for layer 1"),
            ({ (c: inout LlamaConfig) in c.vocabSize += 1 }, "make [97, 64]"),
        ] {
            var mismatched = try TinyModel.graph()
            change(&mismatched.config!)
            let mismatchedURL = work.appendingPathComponent("mismatched.safetensors")
            _ = try LatheBuiltins.registry.writer("safetensors").write(
                mismatched, to: mismatchedURL, options: WriteOptions(overwrite: true))
            let result = try LatheProcess.capture(["check", mismatchedURL.path])
            #expect(result.status == 1 && result.errors.contains(expected), "\(result.errors)")
        }
    }

    @Test("an error quoting a name with a line break or escape sequence is still one line on stderr")
    func oneLineErrors() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let url = work.appendingPathComponent("forged.safetensors")
        let header = #"{"a\nError: forged \u001b[2J":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#
        var bytes: [UInt8] = []
        withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { bytes += $0 }
        try Data(bytes + Array(header.utf8) + [0, 0, 0, 0]).write(to: url)
        let result = try LatheProcess.capture(["inspect", url.path])
        #expect(result.status == 1)
        #expect(result.errors.split(separator: "\n").count == 1, "\(result.errors)")
        #expect(result.errors.contains(#"a\nError: forged \u{1B}[2J"#), "\(result.errors)")
        #expect(!result.errors.contains("\u{1B}"))
    }

    @Test("--help, help COMMAND and COMMAND --help print the whole help on stdout and exit 0")
    func helpOnStandardOutput() throws {
        // One-line error printing once caught the parser's help request and printed the help as an
        // escaped error line on stderr.
        for (arguments, overview) in [
            (["--help"], "Convert, quantize and verify"), (["help", "convert"], "Convert a checkpoint"),
            (["convert", "--help"], "Convert a checkpoint"), (["verify", "-h"], "Compare a converted model"),
        ] {
            let result = try LatheProcess.capture(arguments)
            #expect(result.status == 0, "\(arguments): \(result.errors)")
            #expect(result.errors.isEmpty, "\(arguments): \(result.errors)")
            #expect(result.output.hasPrefix("OVERVIEW: \(overview)"), "\(arguments): \(result.output.prefix(80))")
            #expect(result.output.contains("\nUSAGE: lathe") && result.output.split(separator: "\n").count > 10)
        }
    }

    @Test("inspect --json --metadata gives whole typed values; --tensors widens its columns for packed types")
    func inspectValues() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (_, graph) = try tinyModel(in: work)
        let gguf = work.appendingPathComponent("tiny.gguf")
        _ = try LatheBuiltins.registry.writer("gguf").write(graph, to: gguf, options: WriteOptions())
        let result = try LatheProcess.capture(["inspect", gguf.path, "--json", "--metadata"])
        #expect(result.status == 0, "\(result.errors)")
        let metadata = try #require(JSONValue.parse(result.output)["metadata"])
        #expect(metadata["general.architecture"]?["value"] == .string("llama"))
        #expect(metadata["llama.block_count"]?["value"]?.intValue == TinyModel.config().layerCount)
        let tokens = try #require(metadata["tokenizer.ggml.tokens"])
        #expect(tokens["type"] == .string("array") && tokens["element"] == .string("string"))
        #expect(tokens["value"]?.arrayValue?.compactMap(\.stringValue) == graph.tokenizer?.tokens)
        #expect(metadata["llama.rope.freq_base"]?["value"]?.doubleValue == 10_000)
        // A packed lpack's dtypes (PACKED4/8x2, …) keep a space before the shape.
        let packed = work.appendingPathComponent("tiny.lpack")
        let source = work.appendingPathComponent("quantized.safetensors")
        _ = try writeTiny(PackedExportTests.quantized, to: source)
        #expect(runLathe(["convert", source.path, "-o", packed.path]) == nil)
        let table = try LatheProcess.capture(["inspect", packed.path, "--tensors"])
        let rows = table.output.split(separator: "\n").filter { $0.hasPrefix("  ") && $0.contains("PACKED") }
        #expect(!rows.isEmpty)
        for row in rows {
            let columns = row.split(separator: " ", omittingEmptySubsequences: true)
            #expect(columns.count >= 4 && columns[1].hasPrefix("PACKED") && columns[2].hasPrefix("["), "\(row)")
        }
    }

    @Test("verify warns when a candidate tokenizes otherwise than the base; its scores still come")
    func verifyTokenizerWarning() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, graph) = try tinyModel(in: work)
        var renamed = graph
        renamed.tokenizer?.tokens[40] = "renamed"
        let candidate = work.appendingPathComponent("renamed.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(renamed, to: candidate, options: WriteOptions())
        let text = work.appendingPathComponent("text.txt")
        try Array(repeating: "the quick brown fox jumps", count: 60).joined(separator: " ")
            .write(to: text, atomically: true, encoding: .utf8)
        let result = try LatheProcess.capture([
            "verify", url.path, candidate.path, "--text", text.path, "--ctx", "16", "--chunks", "1",
        ])
        #expect(result.status == 0, "\(result.errors)")
        #expect(
            result.errors.contains("renamed.safetensors's tokenizer differs")
                && result.errors.contains("first difference at id 40"), "\(result.errors)")
        let same = try LatheProcess.capture(["verify", url.path, url.path, "--text", text.path, "--ctx", "16"])
        #expect(same.status == 0 && !same.errors.contains("tokenizer differs"), "\(same.errors)")
    }

    @Test("options that would be ignored or found wrong only after the work are refused first")
    func earlyRefusals() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, _) = try tinyModel(in: work)
        let output = work.appendingPathComponent("out.gguf")
        let short = work.appendingPathComponent("short.txt")
        try "the quick brown fox".write(to: short, atomically: true, encoding: .utf8)
        let report = try LatheProcess.capture([
            "convert", url.path, "-o", output.path, "--type", "f16", "--report",
            work.appendingPathComponent("r.html").path,
            "--report-text", short.path,
        ])
        #expect(report.status == 1)
        #expect(report.errors.contains("needs at least 1024 tokens of text"), "\(report.errors)")
        #expect(!FileManager.default.fileExists(atPath: output.path), "refused before converting")
        let external = try LatheProcess.capture(["convert", url.path, "-o", output.path, "--allow-external", "python3"])
        #expect(external.status == 1 && external.errors.contains("--allow-external needs --recipe"))
        let force = try LatheProcess.capture(["verify", url.path, url.path, "--text", short.path, "--force"])
        #expect(force.status == 1 && force.errors.contains("--force needs --report"), "\(force.errors)")
        let scoring = try LatheProcess.capture(["eval", "ppl", url.path, "--text", short.path, "--protocol", "some"])
        #expect(scoring.status == 64 && scoring.errors.contains("--protocol must be llama or all"))
        // Foundation's file errors are one line naming the file, not "Error Domain=… UserInfo={…}".
        let workFile = work.appendingPathComponent("work-file")
        try "x".write(to: workFile, atomically: true, encoding: .utf8)
        let blocked = try LatheProcess.capture([
            "convert", url.path, "-o", output.path, "--recipe", "q8_0", "--work-dir", workFile.path,
        ])
        #expect(blocked.status == 1 && blocked.errors.hasPrefix("Error: \(workFile.path): "), "\(blocked.errors)")
        #expect(!blocked.errors.contains("Domain=") && blocked.errors.split(separator: "\n").count == 1)
        let noSites = try LatheProcess.capture([
            "calibrate", url.path, "--text", short.path, "--sites", "", "-o", work.path + "/s.safetensors",
        ])
        #expect(noSites.status == 64 && noSites.errors.contains("--sites names at least one site"))
        // A text that is not UTF-8 (a binary file named by mistake) is refused, naming the first bad byte.
        let binary = work.appendingPathComponent("binary.txt")
        try Data([0x61, 0x62, 0x63, 0xE9, 0x64]).write(to: binary)
        let notText = try LatheProcess.capture(["eval", "ppl", url.path, "--text", binary.path])
        #expect(
            notText.status == 1 && notText.errors.contains("is not UTF-8 text (byte 3 is not)"), "\(notText.errors)")
        // A window far past the text is refused before a cache of that many positions is allocated
        // (10^9 positions of the tiny model would take 256 GB: an abort, not an error, before).
        for arguments in [
            ["eval", "ppl", url.path, "--text", short.path, "--ctx", "1000000000"],
            ["verify", url.path, url.path, "--text", short.path, "--ctx", "1000000000"],
            [
                "calibrate", url.path, "--text", short.path, "--length", "1000000000", "-o",
                work.path + "/s.safetensors",
            ],
        ] {
            let huge = try LatheProcess.capture(arguments)
            #expect(huge.status == 1 && huge.errors.contains("tokens, expected"), "\(arguments[0]): \(huge.errors)")
        }
    }

    @Test("--force replaces a model directory, never another directory; a recipe's outputs are checked first")
    func outputDestinations() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, _) = try tinyModel(in: work)
        // A directory holding anything but a model's files is kept, whatever the output's format.
        let home = work.appendingPathComponent("home")
        try FileManager.default.createDirectory(
            at: home.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try "keep".write(to: home.appendingPathComponent("keep.txt"), atomically: true, encoding: .utf8)
        for (arguments, expected) in [
            (["-o", home.path, "--to", "hf"], "is a directory holding 'keep.txt'"),
            (["-o", home.path, "--to", "gguf"], "is a directory; this output is one file"),
            (["-o", work.path, "--to", "hf"], "holds the input"),
            // A directory output never replaces a file either.
            (
                ["-o", home.appendingPathComponent("keep.txt").path, "--to", "hf"],
                "is a file; this output is a directory"
            ),
        ] {
            let refused = try LatheProcess.capture(["convert", url.path, "--force"] + arguments)
            #expect(refused.status == 1 && refused.errors.contains(expected), "\(arguments): \(refused.errors)")
        }
        #expect(FileManager.default.fileExists(atPath: home.appendingPathComponent("keep.txt").path))
        #expect(FileManager.default.fileExists(atPath: url.path))
        // An HF directory is replaced by the next one.
        let hf = work.appendingPathComponent("model-hf")
        #expect(runLathe(["convert", url.path, "-o", hf.path, "--to", "hf"]) == nil)
        #expect(runLathe(["convert", url.path, "-o", hf.path, "--to", "hf", "--force"]) == nil)
        // -o stands for the recipe's first output and the others go beside it; all are checked before
        // the work: one already there stops the conversion before anything is written.
        let recipe = work.appendingPathComponent("three.yaml")
        try """
        name: three
        description: F16 in three formats
        steps:
          - pass: cast
            options: {to: f16}
        outputs:
          - format: safetensors
          - format: gguf
          - format: hf
        """.write(to: recipe, atomically: true, encoding: .utf8)
        let named = work.appendingPathComponent("three.gguf")
        let three = try LatheProcess.capture(["convert", url.path, "--recipe", recipe.path, "-o", named.path])
        #expect(three.status == 0, "\(three.errors)")
        #expect(three.errors.contains("-o writes gguf in place of the recipe's first output, safetensors"))
        for name in ["three.gguf", "three.hf/config.json"] {
            #expect(FileManager.default.fileExists(atPath: work.appendingPathComponent(name).path), "\(name)")
        }
        #expect(!FileManager.default.fileExists(atPath: work.appendingPathComponent("three.safetensors").path))
        try FileManager.default.removeItem(at: named)
        let taken = try LatheProcess.capture(["convert", url.path, "--recipe", recipe.path, "-o", named.path])
        #expect(taken.status == 1 && taken.errors.contains("three.hf: already exists"), "\(taken.errors)")
        #expect(!FileManager.default.fileExists(atPath: named.path))
        // Strictness concerns the outputs written: a Q4_0 recipe whose one output is safetensors
        // (which cannot hold Q4_0) writes GGUF when -o names it; with one output that is no news.
        let q4 = work.appendingPathComponent("q4.yaml")
        try """
        name: q4
        description: Q4_0, listed as safetensors
        steps:
          - pass: quantize-ggml
            options: {type: q4_0}
        outputs:
          - format: safetensors
        """.write(to: q4, atomically: true, encoding: .utf8)
        let replaced = try LatheProcess.capture([
            "convert", url.path, "--recipe", q4.path, "-o", work.appendingPathComponent("q4.gguf").path,
        ])
        #expect(replaced.status == 0, "\(replaced.errors)")
        #expect(!replaced.errors.contains("in place of"), "\(replaced.errors)")
        // Two outputs at one path (-o x.hf, read as the recipe's first format, safetensors, beside an hf
        // output at x.hf) are refused rather than written over each other.
        let clash = try LatheProcess.capture([
            "convert", url.path, "--recipe", recipe.path, "-o", work.appendingPathComponent("x.hf").path,
        ])
        #expect(clash.status != 0 && clash.errors.contains("would both be written to"), "\(clash.errors)")
        // A directory holding the input is never replaced, even when it holds only model files.
        let modelDirectory = work.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: modelDirectory, withIntermediateDirectories: true)
        let inside = modelDirectory.appendingPathComponent("a.safetensors")
        try FileManager.default.copyItem(at: url, to: inside)
        let own = try LatheProcess.capture(["convert", inside.path, "-o", modelDirectory.path, "--to", "hf", "--force"])
        #expect(own.status == 1 && own.errors.contains("holds the input"), "\(own.errors)")
        #expect(FileManager.default.fileExists(atPath: inside.path))
    }

    @Test("a recipe's further lpack output is packed, and each output's manifest lists its own encodings")
    func furtherOutputsPrepared() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, _) = try tinyModel(in: work)
        let recipe = work.appendingPathComponent("two.yaml")
        try """
        name: two
        description: RTN weights, simulated and packed
        steps:
          - pass: quantize-weights
            options: {method: rtn}
        outputs:
          - format: safetensors
          - format: lpack
        """.write(to: recipe, atomically: true, encoding: .utf8)
        let named = work.appendingPathComponent("two.safetensors")
        #expect(runLathe(["convert", url.path, "--recipe", recipe.path, "-o", named.path]) == nil)
        for (name, packed) in [("two.safetensors", false), ("two.lpack", true)] {
            let graph = try ModelInput.open(work.appendingPathComponent(name))
            let weight = try #require(graph["model.layers.0.mlp.up_proj.weight"])
            #expect(weight.info.dtype.description.hasPrefix("PACKED") == packed, "\(name): \(weight.info.dtype)")
            let manifest = try JSONValue.parse(try #require(graph.metadata["lathe.manifest"]?.stringValue))
            #expect(
                manifest["tensors"]?["model.layers.0.mlp.up_proj.weight"] == .string("\(weight.info.dtype)"),
                "\(name)")
        }
    }

    @Test("a recipe output's options reach its writer; the command line's override them")
    func outputOptions() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let (url, _) = try tinyModel(in: work)
        let recipe = work.appendingPathComponent("zstd.yaml")
        try """
        name: zstd
        description: F16, packed and compressed
        steps:
          - pass: cast
            options: {to: f16}
        outputs:
          - format: lpack
            options: {compression: zstd}
        """.write(to: recipe, atomically: true, encoding: .utf8)
        func members(_ arguments: [String]) throws -> Set<String> {
            let output = work.appendingPathComponent("out.lpack")
            #expect(
                runLathe(["convert", url.path, "--recipe", recipe.path, "-o", output.path, "--force"] + arguments)
                    == nil)
            let text = String(decoding: try Data(contentsOf: output), as: UTF8.self)
            return Set(text.matches(of: #/"compression":"([a-z]+)"/#).map { String($0.output.1) })
        }
        #expect(try members([]) == ["zstd"])
        #expect(try members(["--compress", "none"]) == ["none"])
    }

    @Test("recipes --json lists every built-in recipe; plan --json lists every step of the recipe")
    func recipesAndPlans() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let listed = try LatheProcess.capture(["recipes", "--json"])
        #expect(listed.status == 0, "\(listed.errors)")
        let names = try #require(JSONValue.parse(listed.output).arrayValue).compactMap { $0["name"]?.stringValue }
        #expect(names.sorted() == RecipeLibrary.builtinNames.sorted())
        let (url, _) = try tinyModel(in: work)
        let planned = try LatheProcess.capture(["plan", "resq-w4a4kv4", url.path, "--json"])
        #expect(planned.status == 0, "\(planned.errors)")
        let plan = try JSONValue.parse(planned.output)
        let recipe = try RecipeLibrary.load("resq-w4a4kv4")
        let steps = try #require(plan["steps"]?.arrayValue)
        #expect(steps.compactMap { $0["pass"]?.stringValue }.sorted() == recipe.steps.map(\.pass).sorted())
        #expect(plan["recipe"] == .string("resq-w4a4kv4"))
        // A lenient recipe's fallbacks say which output they belong to, and each output counts its own.
        let lenient = work.appendingPathComponent("lenient.yaml")
        try
            "steps:\n  - pass: quantize-ggml\n    options: {type: q8_0}\noutputs:\n  - format: gguf\n  - format: safetensors\nstrict: false\n"
            .write(to: lenient, atomically: true, encoding: .utf8)
        let lenientPlan = try LatheProcess.capture(["plan", lenient.path, url.path, "--json"])
        #expect(lenientPlan.status == 0, "\(lenientPlan.errors)")
        let lenientJSON = try JSONValue.parse(lenientPlan.output)
        let fallbacks = try #require(lenientJSON["fallbacks"]?.arrayValue)
        #expect(!fallbacks.isEmpty && fallbacks.allSatisfy { $0["output"] == .string("safetensors") })
        let outputs = try #require(lenientJSON["outputs"]?.arrayValue)
        #expect(outputs.map { $0["fallbacks"] } == [.int(0), .int(fallbacks.count)])
        // Each step decides once per tensor (rotate listed v_proj and o_proj twice, for U_A and U_B).
        let detailed = try LatheProcess.capture(["plan", "resq-w4a4kv4", url.path, "--json", "--tensors"])
        for step in try #require(JSONValue.parse(detailed.output)["steps"]?.arrayValue) {
            let tensors = try #require(step["decisions"]?.arrayValue).compactMap { $0["tensor"]?.stringValue }
            #expect(Set(tensors).count == tensors.count, "\(step["pass"]?.stringValue ?? "?")")
        }
    }
}

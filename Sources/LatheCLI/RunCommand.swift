import ArgumentParser
import Foundation
import LatheCore
import LatheRuntime

/// `lathe run`: text generation.
struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text from a prompt, streamed as it is produced.",
        discussion: """
            Greedy by default (--temperature 0); with a temperature, samples among the --top-k most likely tokens \
            with a seeded generator, so a seed always gives the same text. --chat wraps the prompt in the model's \
            chat template as one user turn and reads control-token text in it (<|im_start|>) as those tokens; \
            without --chat the prompt is plain text, control-token spellings included.

            Example:
              lathe run model.gguf --chat -p "What is the capital of France?" -n 32
            """
    )

    @Argument(help: "The model (file, HF directory or archive).") var model: String
    @Option(name: .shortAndLong, help: "The prompt.") var prompt: String
    @Option(name: .short, help: "Maximum number of tokens to generate.") var n = 64
    @Option(help: "Sampling temperature (0: greedy).") var temperature: Float = 0
    @Option(help: "Sample among the K most likely tokens (0: all).") var topK = 40
    @Option(help: "Seed for sampling.") var seed: UInt64 = 0
    @Flag(help: "Apply the model's chat template for a single user turn.") var chat = false
    @Flag(help: "Print prompt and generation speed (tokens/s) and the weights' size on stderr.") var stats = false
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var input: InputOptions

    static let maxTokens = 1 << 24
    static let unknownContext = 8192

    func validate() throws {
        // The cache is allocated for the prompt plus -n tokens up front: bounded like a config's context.
        guard (0...Self.maxTokens).contains(n) else {
            throw ValidationError("-n must be at least 0 and at most \(Self.maxTokens)")
        }
        guard temperature.isFinite, temperature >= 0 else {
            throw ValidationError("--temperature must be a finite number, 0 or more")
        }
        guard topK >= 0 else { throw ValidationError("--top-k must be at least 0 (0: every token)") }
    }

    func run() throws {
        let threads = try runtime.apply(for: .decoding)
        let printer = StderrDiagnostics(verbose: input.verbose)
        let loaded = try LoadedModel(model, format: input.format, diagnostics: printer.diagnostics)
        let text =
            chat ? try ChatTemplate.prompt(for: prompt, template: loaded.tokenizer.description.chatTemplate) : prompt
        let tokens = loaded.tokenizer.encode(text, addSpecial: true, parseSpecial: chat)
        // A model that does not state its context gets the trained context of most small models.
        let limit = loaded.weights.config.trainedContext ?? Self.unknownContext
        guard tokens.count < limit else {
            let stated = loaded.weights.config.trainedContext == nil ? " (the model does not state it; run allows)" : ""
            throw UsageError(
                "the prompt is \(tokens.count) tokens; the model's context\(stated) is \(limit) tokens, including what it generates"
            )
        }
        let session = runtime.session(
            loaded.weights, maxContext: min(limit, tokens.count + n), threads: threads)
        let generator = Generator(
            session: session, tokenizer: loaded.tokenizer,
            sampling: SamplingOptions(temperature: temperature, topK: topK, seed: seed))
        var pending: [UInt8] = []
        let start = Date()
        var firstToken: Date?
        var lastToken = start
        var generated = 0
        try generator.generate(prompt: tokens, maxTokens: n) { id in
            lastToken = Date()
            if firstToken == nil { firstToken = lastToken }
            generated += 1
            // Print whole UTF-8 sequences only: a character may span tokens.
            pending += loaded.tokenizer.bytes([id], skipSpecial: true)
            if let text = String(validating: pending, as: UTF8.self) {
                FileHandle.standardOutput.write(Data(text.utf8))
                pending.removeAll()
            }
        }
        print(String(decoding: pending, as: UTF8.self))
        if generated < n, tokens.count + generated >= session.maxContext {
            printer.diagnostics.warning(
                "stopped after \(counted(generated, "token")) of -n \(n): the context is full (\(session.maxContext) tokens)"
            )
        }
        if stats, let firstToken {
            let prefill = firstToken.timeIntervalSince(start)
            // From the first token to the last: generated − 1 decoding steps, whatever ended the run.
            let decode = lastToken.timeIntervalSince(firstToken)
            printError(
                String(
                    format:
                        "\nstats: weights %@ in memory; prompt %d tokens at %.0f tokens/s; %d more tokens at %.1f tokens/s (%@)",
                    formatBytes(loaded.weights.byteCount), tokens.count, Double(tokens.count) / prefill,
                    generated - 1, Double(generated - 1) / max(decode, 1e-9), counted(threads, "thread")))
        }
    }
}

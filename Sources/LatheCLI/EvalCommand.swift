import ArgumentParser
import Foundation
import LatheCore
import LatheRuntime

/// `lathe eval`: measurements of one model.
struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure a model (today: perplexity on a text).",
        discussion: """
            To compare a converted model with its original (KL divergence, top-1 agreement, both \
            perplexities), use `lathe verify`.

            Example:
              lathe eval ppl model.gguf --text data/wikitext-2/wiki.test.raw --chunks 40
            """,
        subcommands: [PerplexityCommand.self]
    )
}

/// `lathe eval ppl`.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppl",
        abstract: "Perplexity of a model on a text.",
        discussion: """
            The whole text is tokenized in one call and cut into non-overlapping chunks of --ctx tokens, each \
            evaluated with a fresh cache. With --protocol llama (llama-perplexity's) the second half of each \
            chunk is scored; with --protocol all every prediction is. Weights are loaded once: packed matrices, and F16 \
            matrices not stacked with others (q/k/v and gate/up are joined in F32), run in place; the rest is \
            decoded to F32.

            Example:
              lathe eval ppl model.gguf --text data/wikitext-2/wiki.test.raw \\
                  --ctx 512 --chunks 40
            """
    )

    @Argument(help: "The model (file, HF directory or archive).") var model: String
    @OptionGroup var text: TextOptions
    @OptionGroup var runtime: RuntimeOptions
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var input: InputOptions

    func run() throws {
        let threads = try runtime.apply(for: .batches)
        let printer = StderrDiagnostics(verbose: input.verbose)
        let loaded = try LoadedModel(model, format: input.format, diagnostics: printer.diagnostics)
        text.warnBeyondContext(of: loaded.weights.config, model: model, diagnostics: printer.diagnostics)
        let tokens = try text.tokens(loaded.tokenizer)
        try requireEnoughTokens(tokens.count, context: text.ctx, scoring: try text.scoring)
        let session = runtime.session(loaded.weights, maxContext: text.ctx, threads: threads)
        let result = try Perplexity.evaluate(
            session, tokens: tokens, context: text.ctx, maxChunks: text.chunks, protocol: try text.scoring,
            windowStart: loaded.tokenizer.windowStart, diagnostics: printer.diagnostics)
        if json {
            printJSON(
                .object([
                    ("model", .string(loaded.graph.source)), ("text", .string(text.text)),
                    ("protocol", .string(text.protocol)),
                    ("ctx", .int(text.ctx)), ("chunks", .int(result.chunks)), ("text_tokens", .int(tokens.count)),
                    ("scored_tokens", .int(result.scoredTokens)),
                    ("perplexity", .number(String(format: "%.6f", result.perplexity))),
                    ("standard_error", .number(String(format: "%.6f", result.standardError))),
                    ("seconds", .number(String(format: "%.3f", result.seconds))),
                    ("tokens_per_second", .number(String(format: "%.1f", result.tokensPerSecond))),
                ]))
        } else {
            let error = result.standardError.isFinite ? String(format: "%.4f", result.standardError) : "n/a"
            print(
                String(
                    format: "PPL = %.4f ± %@  (%@ of %d, %@ of %d, protocol %@, %.1f tokens/s)",
                    result.perplexity, error, counted(result.chunks, "chunk"), text.ctx,
                    counted(result.scoredTokens, "scored token"), tokens.count, text.protocol, result.tokensPerSecond))
        }
    }
}

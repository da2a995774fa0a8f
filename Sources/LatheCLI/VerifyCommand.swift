import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LatheReport
import LatheRuntime

/// `lathe verify`: a converted model against its original.
struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare a converted model against its original: KL divergence, top-1 agreement, perplexity.",
        discussion: """
            Both models run side by side on the same chunks of the text (base logits are never stored). For every \
            scored token: KL(base ‖ candidate) over the whole vocabulary, whether both pick the same most likely \
            token, and each model's log-likelihood; for every layer, the relative RMS error of the candidate's \
            residual stream against the base's, over every position of each chunk. The KL median and p99 are \
            interpolated between the nearest ranks.

            With --decode each candidate reads the text one token at a time, as `lathe run` generates: the \
            decoding kernels and the KV cache as generation uses them, against the base's prefill. Slower \
            (a chunk takes as long as generating it); without it both run each chunk as one prefill.

            Example:
              lathe verify model.gguf model-q4_0.gguf \\
                  --text data/wikitext-2/wiki.test.raw --chunks 10
            """
    )

    @Argument(help: "The original (base) model.") var base: String
    @Argument(help: "The converted (candidate) models: several are compared in one pass over the text.")
    var candidates: [String]
    @OptionGroup var text: TextOptions
    @OptionGroup var runtime: RuntimeOptions
    @Flag(help: "Print JSON: an object for one candidate, an array of them for several.") var json = false
    @Flag(help: "Run the candidates token by token, as generation does, instead of one prefill per chunk.")
    var decode = false
    @Option(
        help: ArgumentHelp(
            "Also write a self-contained HTML report (summary, per-layer error, KL histogram, PCA spectra, sizes, provenance); one candidate only.",
            valueName: "file.html"))
    var report: String?
    @Flag(help: "With --report, replace an existing report file.") var force = false
    @OptionGroup var input: InputOptions

    func run() throws {
        if let report {
            try ReportDestination.check(report, force: force, inputs: [base] + candidates)
        }
        guard !candidates.isEmpty else { throw UsageError("name at least one candidate model") }
        if report != nil, candidates.count > 1 { throw UsageError("--report takes one candidate model") }
        if force, report == nil { throw UsageError("--force needs --report (it lets the report replace a file)") }
        let threads = try runtime.apply(for: .batches)
        let printer = StderrDiagnostics(verbose: input.verbose)
        let baseModel = try LoadedModel(base, format: input.format, diagnostics: printer.diagnostics)
        let candidateModels = try candidates.map {
            try LoadedModel($0, format: input.format, diagnostics: printer.diagnostics)
        }
        text.warnBeyondContext(of: baseModel.weights.config, model: base, diagnostics: printer.diagnostics)
        // Every model scores the base's tokens; a candidate that tokenizes otherwise would generate
        // differently however close its scores.
        for (path, candidate) in zip(candidates, candidateModels) {
            let differences = ModelComparison.compare(baseModel.graph.tokenizer, candidate.graph.tokenizer)
            if !differences.isEmpty {
                printer.diagnostics.warning(
                    "\(path)'s tokenizer differs from \(base)'s (\(differences.joined(separator: "; "))); both are scored on \(base)'s tokens"
                )
            }
        }
        let tokens = try text.tokens(baseModel.tokenizer)
        try requireEnoughTokens(tokens.count, context: text.ctx, scoring: try text.scoring)
        let results = try Verifier.compare(
            base: runtime.session(baseModel.weights, maxContext: text.ctx, threads: threads),
            candidates: candidateModels.map {
                runtime.session($0.weights, maxContext: text.ctx, threads: threads)
            },
            tokens: tokens, context: text.ctx, maxChunks: text.chunks, protocol: try text.scoring, decode: decode,
            windowStart: baseModel.tokenizer.windowStart, diagnostics: printer.diagnostics)
        if let report, let result = results.first, let candidate = candidateModels.first {
            var data = try Self.reportData(
                base: baseModel.graph, candidate: candidate.graph, result: result, text: text.text,
                scoring: try text.scoring, context: text.ctx)
            // The paths as given: a report shared with others should not carry this machine's layout.
            (data.base.path, data.candidate.path) = (base, candidates[0])
            let url = URL(fileURLWithPath: report)
            try HTMLReport.write(data, to: url, overwrite: force)
            printError("wrote \(url.path)")
        }
        if json {
            let scoring = try text.scoring
            let reports = zip(candidateModels, results).map {
                Self.json(base: baseModel, candidate: $0, result: $1, scoring: scoring, context: text.ctx)
            }
            printJSON(reports.count == 1 ? reports[0] : .array(reports))
            return
        }
        for (model, result) in zip(candidateModels, results) {
            if results.count > 1 { print("\(model.graph.source):") }
            report(result)
        }
    }

    static func json(
        base: LoadedModel, candidate: LoadedModel, result: VerificationResult, scoring: PerplexityProtocol,
        context: Int
    ) -> JSONValue {
        func number(_ value: Double) -> JSONValue { .number(String(format: "%.9g", value)) }
        return .object([
            ("base", .string(base.graph.source)), ("candidate", .string(candidate.graph.source)),
            ("protocol", .string(scoring.rawValue)), ("ctx", .int(context)),
            ("chunks", .int(result.chunks)), ("scored_tokens", .int(result.scoredTokens)),
            (
                "kl",
                .object([
                    ("mean", number(result.kl.mean)), ("median", number(result.kl.median)),
                    ("p99", number(result.kl.p99)), ("max", number(result.kl.max)),
                ])
            ),
            ("top1_agreement", number(result.topOneAgreement)),
            ("base_perplexity", number(result.basePerplexity)),
            ("candidate_perplexity", number(result.candidatePerplexity)),
            ("perplexity_ratio", number(result.perplexityRatio)),
            ("layer_relative_rms_error", .array(result.layerErrors.map(number))),
            (
                "kl_histogram",
                .object([
                    ("bin_edges", .array(VerificationResult.histogramEdges.map(number))),
                    ("counts", .array(result.kl.histogram.map { .int($0) })),
                ])
            ),
        ])
    }

    /// The report's data: the comparison, both models' sizes by tensor class, the candidate's PCA
    /// spectra and provenance.
    static func reportData(
        base: ModelGraph, candidate: ModelGraph, result: VerificationResult, text: String,
        scoring: PerplexityProtocol, context: Int
    ) throws -> VerificationReport {
        let layout = try SubspaceLayout(metadata: candidate.metadata)
        let spectra = (layout.spectra ?? [:]).sorted { $0.key > $1.key }.map { site, values in
            VerificationReport.Spectrum(
                site: site, eigenvalues: values, highRank: site == "residual" ? layout.hiddenHigh : layout.headHigh)
        }
        return VerificationReport(
            title: "Lathe verification: \(URL(fileURLWithPath: candidate.source).lastPathComponent)",
            base: try .init(base), candidate: try .init(candidate), text: text, scoring: scoring.rawValue,
            context: context, chunks: result.chunks,
            scoredTokens: result.scoredTokens,
            kl: .init(
                mean: result.kl.mean, median: result.kl.median, p99: result.kl.p99, max: result.kl.max,
                binEdges: VerificationResult.histogramEdges, counts: result.kl.histogram),
            topOneAgreement: result.topOneAgreement, basePerplexity: result.basePerplexity,
            candidatePerplexity: result.candidatePerplexity, layerErrors: result.layerErrors, spectra: spectra)
    }

    func report(_ result: VerificationResult) {
        print(
            "Verified \(counted(result.scoredTokens, "token")) in \(counted(result.chunks, "chunk")) of \(text.ctx), protocol \(text.protocol) (\(String(format: "%.1f", result.seconds)) s)"
        )
        print(
            String(
                format: "  KL(base‖candidate)  mean %.6f  median %.6f  p99 %.6f  max %.6f", result.kl.mean,
                result.kl.median, result.kl.p99, result.kl.max))
        print(String(format: "  top-1 agreement     %.2f %%", result.topOneAgreement * 100))
        print(
            String(
                format: "  perplexity          base %.4f  candidate %.4f  ratio %.4f", result.basePerplexity,
                result.candidatePerplexity,
                result.perplexityRatio))
        print("  per-layer relative RMS error of the residual stream:")
        for start in stride(from: 0, to: result.layerErrors.count, by: 6) {
            let row = result.layerErrors[start..<min(start + 6, result.layerErrors.count)].enumerated()
                .map { String(format: "%2d: %.2e", start + $0.offset, $0.element) }
            print("    " + row.joined(separator: "  "))
        }
    }
}

import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime

/// `lathe calibrate`: activation statistics as a reusable artifact.
struct Calibrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Collect activation statistics (Σxxᵀ, Σx, counts per site and layer) over calibration windows.",
        discussion: """
            Runs --windows random windows of --length tokens from --text (seeded: the same windows on every \
            machine) through the model and accumulates, in Float64, the second moments of the activations at \
            every site: attention and MLP inputs, the output projection's and down projection's inputs, and \
            per KV head the value outputs and the keys after RoPE. The result is a safetensors file whose schema \
            is documented in formats/calibration.md, so statistics can be reused by other recipes or produced \
            by another engine. Calibrate on the validation split, never on the text you evaluate on.

            Example:
              lathe calibrate model.gguf --text data/wikitext-2/wiki.valid.tokens \\
                  --windows 32 -o stats.safetensors
            """
    )

    @Argument(help: "The model.") var model: String
    @Option(help: "Calibration text (UTF-8).") var text: String
    @Option(help: "Number of windows.") var windows = 32
    @Option(help: "Tokens per window.") var length = 512
    @Option(help: "Seed for choosing the windows.") var seed: UInt64 = 0
    @Option(
        help:
            "Comma-separated sites (default: all): \(ActivationSite.allCases.map(\.rawValue).joined(separator: ", ")).")
    var sites: String?
    @Option(name: .shortAndLong, help: "The statistics file (.safetensors).") var output: String
    @Flag(help: "Overwrite an existing output.") var force = false
    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var input: InputOptions

    func validate() throws {
        guard windows >= 1, length >= 2 else {
            throw ValidationError("--windows must be at least 1 and --length at least 2")
        }
        guard URL(fileURLWithPath: output).pathExtension.lowercased() == "safetensors" else {
            throw ValidationError("-o must name a .safetensors file (statistics are written as safetensors)")
        }
        if let sites, sites.split(separator: ",").isEmpty {
            throw ValidationError("--sites names at least one site (leave it out for all)")
        }
    }

    func run() throws {
        // Checked before the model runs: a destination that cannot be written must not cost the calibration.
        try AtomicOutput.check(URL(fileURLWithPath: output), overwrite: force)
        let threads = try runtime.apply(for: .batches)
        let printer = StderrDiagnostics(verbose: input.verbose)
        let selected =
            try sites.map { list in
                try Set(
                    list.split(separator: ",").map { name in
                        guard let site = ActivationSite(rawValue: String(name)) else {
                            throw UsageError(
                                "unknown site '\(name)'; sites: \(ActivationSite.allCases.map(\.rawValue).joined(separator: ", "))"
                            )
                        }
                        return site
                    })
            } ?? Set(ActivationSite.allCases)
        let loaded = try LoadedModel(model, format: input.format, diagnostics: printer.diagnostics)
        let textURL = URL(fileURLWithPath: text)
        if let trained = loaded.weights.config.trainedContext, length > trained {
            printer.diagnostics.warning(
                "--length \(length) is past \(model)'s context length (\(trained)); those positions were never trained"
            )
        }
        RecipeRunner.warnIfTestSplit(text, diagnostics: printer.diagnostics)
        let tokens = try loaded.tokenizer.encodeFile(textURL, purpose: "calibration text")
        try CalibrationStatistics.requireEnoughTokens(tokens.count, length: length)
        let statistics = CalibrationStatistics(headDim: loaded.weights.config.headDim, sites: selected)
        let started = Date()
        try statistics.collect(
            LlamaSession(weights: loaded.weights, maxContext: length, threads: threads), tokens: tokens,
            windows: windows, length: length,
            seed: seed,
            diagnostics: printer.diagnostics)
        var metadata = Metadata()
        metadata["lathe.calibration.schema"] = .uint32(1)
        metadata["lathe.calibration.model"] = .string(URL(fileURLWithPath: model).lastPathComponent)
        metadata["lathe.calibration.text"] = .string(textURL.lastPathComponent)
        metadata["lathe.calibration.text_sha256"] = .string(try SHA256.file(textURL.path))
        metadata["lathe.calibration.windows"] = .uint32(UInt32(windows))
        metadata["lathe.calibration.length"] = .uint32(UInt32(length))
        metadata["lathe.calibration.seed"] = .uint64(seed)
        metadata["lathe.calibration.head_dim"] = .uint32(UInt32(loaded.weights.config.headDim))
        let graph = try statistics.graph(metadata: metadata)
        let report = try LatheEnvironment.registry.writer("safetensors").write(
            graph, to: URL(fileURLWithPath: output),
            options: WriteOptions(overwrite: force, diagnostics: printer.diagnostics))
        print(
            "wrote \(report.path): \(statistics.count) statistics over \(counted(windows, "window")) of \(length) tokens "
                + "(\(formatBytes(report.bytesWritten))) in \(String(format: "%.1f", Date().timeIntervalSince(started))) s"
        )
    }
}

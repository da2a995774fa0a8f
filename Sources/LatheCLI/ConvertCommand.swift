import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheReport
import LatheRuntime
import LinearAlgebra

/// `lathe convert`: one checkpoint format or encoding to another.
struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint between formats and encodings.",
        discussion: """
            The output format comes from --to, or from the output name (.gguf, .safetensors, .lpack; a name \
            without an extension is an HF directory). Writing lpack packs the matrices a recipe quantized \
            (quantize-weights) as int4/int8 codes with per-row scales, losslessly; --compress zstd compresses \
            each member (smaller, but no longer mapped in place). --type sets the encoding of every weight matrix (1-D tensors such as \
            norms, and a ResQ model's online rotations, keep theirs, except that GGUF stores half-precision \
            vectors as F32, which llama.cpp needs); --tensor-type REGEX=TYPE overrides it for \
            tensors whose HF or GGUF name matches (first match wins; a block type such as q8_0 applies to weight \
            matrices only, a float type to any tensor). A type that does not fit a tensor (a row that is not a whole number of blocks) is an error \
            naming the tensor, or with --fallback-type TYPE that type, in a warning that lists them. A tensor whose \
            encoding the target cannot store and that neither --type nor a rule re-encodes (ggml blocks in \
            safetensors, U32 in GGUF) is converted to F32, with a warning naming it.

            The output is written beside the destination and renamed into place when complete; an existing \
            output is kept unless --force is given. Memory stays near one tensor: inputs are mapped, and each \
            converted tensor is computed only when it is written.

            Examples:
              lathe convert model.gguf -o model.safetensors
              lathe convert model.safetensors -o model-f16.gguf --type f16
              lathe convert model.gguf -o model-q8.gguf --type q8_0 \\
                  --tensor-type 'token_embd=f16'
              lathe convert model.gguf -o smollm2-hf --to hf
              lathe convert model.gguf --recipe resq-w4a4kv4 -o smollm2-resq.lpack
            """
    )

    @Argument(help: "The input model (file, HF directory or archive).") var input: String
    @Option(name: .shortAndLong, help: "The output path.") var output: String
    @Option(help: "Output format: gguf, safetensors, lpack or hf.") var to: String?
    @Option(help: "Encoding for matrices: \(ConversionPlan.typeNames.keys.sorted().joined(separator: ", ")).")
    var type: String?
    @Option(
        name: .customLong("tensor-type"), help: ArgumentHelp("Per-tensor encoding override.", valueName: "regex=type"))
    var tensorTypes: [String] = []
    @Option(
        help: ArgumentHelp(
            "The encoding for matrices whose rows --type's or a rule's blocks do not divide (q4_k's 256 columns on a 576-wide model), listed in a warning, as llama-quantize falls back; without it such a matrix is an error.",
            valueName: "type"))
    var fallbackType: String?
    @Option(help: "Run a recipe (built-in name or file) instead of --type/--tensor-type.") var recipe: String?
    @Option(
        help:
            "Split safetensors output into shards of at most this many bytes of tensor data, as transformers counts them (headers add to that; a larger tensor gets a shard of its own): the output path becomes a directory of model-NNNNN-of-NNNNN.safetensors files and model.safetensors.index.json."
    )
    var maxShardSize: Int?
    @Option(help: "lpack member compression: none (mappable, the default) or zstd.") var compress: String?
    @Flag(help: "Overwrite an existing output (a directory only with a directory, and only an HF or shards directory).")
    var force = false
    @Flag(help: "With --recipe, do not embed the provenance manifest (lathe.manifest).") var noManifest = false
    @Option(help: "With --recipe, keep a checkpoint after every step in this directory.") var workDir: String?
    @Flag(help: "With --recipe and --work-dir, skip the steps whose checkpoints exist for this exact run.") var resume =
        false
    @Option(
        help: ArgumentHelp(
            "With --recipe, calibrate on this text instead of the recipe's calibration.file (relative to the working directory).",
            valueName: "path"))
    var calibrationText: String?
    @Flag(
        help: ArgumentHelp(
            "For GGUF: refuse transforms llama.cpp cannot run (online rotations) and drop Lathe's own tensors.",
            valueName: "for-llama-cpp"))
    var forLlamaCpp = false
    @Option(
        name: .customLong("report"),
        help: ArgumentHelp(
            "Verify the output against the input and write a self-contained HTML report (as lathe verify --report).",
            valueName: "file.html"))
    var htmlReport: String?
    @Option(
        help: ArgumentHelp(
            "With --report: the text to verify on (default: the recipe's evaluate.text, else data/wikitext-2/wiki.test.raw, 4 windows of 512).",
            valueName: "path"))
    var reportText: String?
    @Flag(help: "Print the write report as JSON.") var json = false
    @OptionGroup var inputOptions: InputOptions
    @OptionGroup var external: ExternalPassOptions

    func run() throws {
        external.apply()
        let started = Date()
        // OpenBLAS splits its work by its thread count, and with it the order of its sums: one thread
        // keeps every output byte-identical whatever the machine (the passes parallelize themselves).
        BLAS.threadCount = 1
        let printer = StderrDiagnostics(verbose: inputOptions.verbose)
        let outputURL = URL(fileURLWithPath: output)
        let loadedRecipe = try loadRecipe()
        // --to, then the output's extension, then the recipe's first output, then a directory (hf).
        let named = LatheEnvironment.registry.writerID(forExtension: outputURL.pathExtension)
        let formatID = try to ?? named ?? loadedRecipe?.outputs.first?.format ?? Self.inferFormat(outputURL)
        let writer = try LatheEnvironment.registry.writer(formatID)
        try checkOptions(formatID: formatID, recipe: loadedRecipe)
        let plan = ConversionPlan(
            defaultType: try type.map(ConversionPlan.parseType), rules: try tensorTypes.map(ConversionPlan.Rule.init),
            fallbackType: try fallbackType.map(ConversionPlan.parseType))
        func parameters(for format: String, _ writer: any FormatWriter) -> [String: String] {
            writerParameters(for: format, writer, recipe: loadedRecipe)
        }
        let extraOutputs = try checkedOutputs(
            formatID: formatID, outputURL: outputURL, recipe: loadedRecipe, diagnostics: printer.diagnostics)
        var source = try ModelInput.open(
            URL(fileURLWithPath: input), format: inputOptions.format,
            options: ReadOptions(diagnostics: printer.diagnostics), registry: LatheEnvironment.registry)
        let reportTokens = try htmlReport.map { _ in try reportTextTokens(source, evaluation: loadedRecipe?.evaluation)
        }
        // Tensors the passes compute wait beside the output, mapped, not in memory.
        source.spill = SpillStore(
            directory: outputURL.deletingLastPathComponent(), prefix: outputURL.lastPathComponent)
        // Every output, the named one and each further one, is made from the steps' result the same
        // way: the writer's preparation (lpack packs the quantized matrices), the encodings (fallbacks
        // to F32; a strict recipe has refused them already), then for gguf llama.cpp's view, and the
        // manifest's table of what the file holds.
        func encoded(_ graph: ModelGraph, for format: String, _ writer: any FormatWriter) throws -> ModelGraph {
            try plan.apply(
                to: LatheEnvironment.registry.prepare(graph, for: format, diagnostics: printer.diagnostics),
                writer: Swift.type(of: writer), diagnostics: printer.diagnostics)
        }
        func finished(_ graph: ModelGraph, for format: String) throws -> ModelGraph {
            try Provenance.recordingEncodings(
                of: format == "gguf"
                    ? Self.prepareGGUF(graph, forLlamaCpp: forLlamaCpp, diagnostics: printer.diagnostics) : graph)
        }
        let finish = { (graph: ModelGraph) throws -> ModelGraph in try encoded(graph, for: formatID, writer) }
        let (converted, unfinished) =
            try loadedRecipe.map {
                // The recipe's steps run; its output is the one named on the command line.
                try RecipeRunner(
                    recipe: $0, input: URL(fileURLWithPath: input), diagnostics: printer.diagnostics,
                    workDirectory: workDir.map { URL(fileURLWithPath: $0) }, resume: resume
                ).run(
                    on: source, registry: LatheEnvironment.registry, format: formatID, withManifest: !noManifest,
                    finish: finish)
            } ?? (finish(source), source)
        let graph = try finished(converted, for: formatID)
        let report = try writer.write(
            graph, to: outputURL,
            options: WriteOptions(
                overwrite: force, diagnostics: printer.diagnostics, parameters: parameters(for: formatID, writer)))
        var reports = [(formatID, report)]
        for (extra, url) in extraOutputs {
            let extraWriter = try LatheEnvironment.registry.writer(extra)
            // From the steps' result, not the named output's: an hf output beside a named lpack got
            // its packed matrices, at F32; an lpack beside safetensors was written unpacked.
            let extraGraph = try finished(encoded(unfinished, for: extra, extraWriter), for: extra)
            reports.append(
                (
                    extra,
                    try extraWriter.write(
                        extraGraph, to: url,
                        options: WriteOptions(
                            overwrite: force, diagnostics: printer.diagnostics,
                            parameters: parameters(for: extra, extraWriter)))
                ))
        }
        if let htmlReport, let reportTokens {
            do {
                try writeReport(
                    to: URL(fileURLWithPath: htmlReport), output: outputURL, tokens: reportTokens,
                    evaluation: loadedRecipe?.evaluation, printer: printer)
            } catch {
                // The model is in place: an error that reads as the conversion's would hide it.
                throw LatheError.problem(
                    errorMessage(error),
                    reason:
                        "the report was not written, the model was (\(reports.map(\.1.path).joined(separator: ", ")))")
            }
        }
        let seconds = Date().timeIntervalSince(started)
        printSummary(input: source.source, format: formatID, reports: reports, seconds: seconds)
    }

    static let defaultReportText = "data/wikitext-2/wiki.test.raw"

    /// The text the report verifies on: --report-text, else the recipe's evaluation text, else the
    /// WikiText-2 test split.
    func reportTextPath(_ evaluation: Recipe.Evaluation?) -> String {
        reportText ?? evaluation?.text ?? Self.defaultReportText
    }

    /// The report's window length: the recipe's evaluation `ctx`, else 512.
    static func reportContext(_ evaluation: Recipe.Evaluation?) -> Int { evaluation?.ctx ?? 512 }

    /// Options that would do nothing here are refused: a user who passed one expects its effect.
    func checkOptions(formatID: String, recipe: Recipe?) throws {
        let formats = Set([formatID] + (recipe?.outputs.map(\.format) ?? []))
        if compress != nil, !formats.contains("lpack") {
            throw UsageError("--compress applies to lpack output; this writes \(formatID)")
        }
        if maxShardSize != nil, formats.isDisjoint(with: ["safetensors", "hf"]) {
            throw UsageError("--max-shard-size applies to safetensors and HF output; this writes \(formatID)")
        }
        let pathExtension = URL(fileURLWithPath: output).pathExtension
        if let named = LatheEnvironment.registry.writerID(forExtension: pathExtension), named != formatID {
            throw UsageError(
                "--to \(formatID) contradicts the output name's .\(pathExtension); name the output for its format")
        }
        if forLlamaCpp, formatID != "gguf" {
            throw UsageError("--for-llama-cpp applies to GGUF output; this writes \(formatID)")
        }
        if recipe == nil {
            for (flag, given) in [
                ("--work-dir", workDir != nil), ("--resume", resume), ("--no-manifest", noManifest),
            ] where given {
                throw UsageError("\(flag) needs --recipe (it concerns the recipe's steps and manifest)")
            }
        }
        if recipe == nil, !external.programs.isEmpty {
            throw UsageError("--allow-external needs --recipe (it lets the recipe's external steps run)")
        }
        if resume, workDir == nil {
            throw UsageError("--resume needs --work-dir (the directory holding the checkpoints)")
        }
        if reportText != nil, htmlReport == nil {
            throw UsageError("--report-text needs --report (it is the text the report verifies on)")
        }
        if let htmlReport {
            // Checked before converting: a report that cannot be written must not cost a conversion.
            try ReportDestination.check(htmlReport, force: force, inputs: [input, output])
            let text = reportTextPath(recipe?.evaluation)
            guard FileManager.default.isReadableFile(atPath: text) else {
                throw LatheError.fileAccess(
                    path: text,
                    reason:
                        "cannot read the report text (pass --report-text; the default is relative to the working directory)"
                )
            }
        }
    }

    /// The report's text, tokenized with the input's tokenizer before anything is converted: a text
    /// too short for one window must not cost a conversion.
    func reportTextTokens(_ source: ModelGraph, evaluation: Recipe.Evaluation?) throws -> [Int] {
        guard let description = source.tokenizer else {
            throw LatheError.missingField(
                "tokenizer", in: "\(input) (--report runs the model, which needs its tokenizer)")
        }
        let text = reportTextPath(evaluation)
        let tokens = try BPETokenizer(description).encodeFile(URL(fileURLWithPath: text), purpose: "report text")
        let context = Self.reportContext(evaluation)
        guard tokens.count >= 2 * context else {
            throw UsageError(
                "--report verifies on windows of \(context) tokens, scoring their second halves, so it needs at least \(2 * context) tokens of text; \(text) has \(tokens.count)"
            )
        }
        return tokens
    }

    /// The written output against the input, side by side on the evaluation text, as an HTML report.
    func writeReport(
        to url: URL, output: URL, tokens: [Int], evaluation: Recipe.Evaluation?, printer: StderrDiagnostics
    ) throws {
        BLAS.threadCount = 1
        let threads = max(1, RuntimeOptions.defaultThreadCount)
        let base = try LoadedModel(input, format: inputOptions.format, diagnostics: printer.diagnostics)
        let candidate = try LoadedModel(output.path, format: nil, diagnostics: printer.diagnostics)
        let context = Self.reportContext(evaluation)
        let result = try Verifier.compare(
            base: LlamaSession(weights: base.weights, maxContext: context, threads: threads),
            candidate: LlamaSession(weights: candidate.weights, maxContext: context, threads: threads),
            tokens: tokens, context: context, maxChunks: evaluation?.chunks ?? 4, protocol: .llama,
            windowStart: base.tokenizer.windowStart, diagnostics: printer.diagnostics)
        var data = try Verify.reportData(
            base: base.graph, candidate: candidate.graph, result: result, text: reportTextPath(evaluation),
            scoring: .llama,
            context: context)
        (data.base.path, data.candidate.path) = (input, self.output)
        try HTMLReport.write(data, to: url, overwrite: force)
        printError("wrote \(url.path)")
    }

    /// What llama.cpp can and cannot run of the model: a warning, or with `forLlamaCpp` an error for
    /// online transforms and Lathe's own tensors left out.
    static func prepareGGUF(_ graph: ModelGraph, forLlamaCpp: Bool, diagnostics: Diagnostics) throws -> ModelGraph {
        let compatibility = try LlamaCppCompatibility(
            metadata: graph.metadata, tensorNames: graph.tensorNames, config: graph.config)
        guard forLlamaCpp else {
            if !compatibility.isFullyRepresentable || !compatibility.extraTensors.isEmpty {
                diagnostics.warning(
                    "GGUF for llama.cpp: \(compatibility.summary)"
                        + (compatibility.extraTensors.isEmpty
                            ? "" : "; its loader refuses Lathe's \(compatibility.extraTensors.count) extra tensor(s)")
                        + " (Lathe's runtime reads the file as written; --for-llama-cpp makes a file llama.cpp loads)")
            }
            return graph
        }
        guard compatibility.blocking.isEmpty else {
            throw LatheError.invalidValue(
                field: "--for-llama-cpp", value: compatibility.blocking.joined(separator: "; "),
                expected: "a model whose transforms are all fused (a recipe without online-hadamard and key rotation)")
        }
        if !compatibility.ignored.isEmpty { diagnostics.warning("GGUF for llama.cpp: \(compatibility.summary)") }
        var result = graph
        for name in compatibility.extraTensors { try result.remove(name) }
        return result
    }

    /// The format of an output whose extension names none: a directory (no extension) is HF.
    static func inferFormat(_ url: URL) throws -> String {
        guard url.pathExtension.isEmpty else {
            let formats = LatheEnvironment.registry.entries.filter { $0.kind == .writer }.map(\.id)
            let listed =
                formats.dropLast().joined(separator: ", ") + (formats.count > 1 ? " or " : "") + (formats.last ?? "")
            throw UsageError("cannot tell the output format from '\(url.lastPathComponent)'; pass --to \(listed)")
        }
        return "hf"
    }
}

import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheRuntime
import LinearAlgebra

/// What `convert --recipe` does around the passes: calibration before them (collected, or reused
/// from a statistics file), evaluation after them, and the provenance manifest.
struct RecipeRunner {
    let recipe: Recipe
    let input: URL
    let diagnostics: Diagnostics
    /// Where per-step checkpoints go (none without it), and whether to resume from them.
    var workDirectory: URL?
    var resume = false

    /// The statistics the recipe asks for, as a pass-context artifact. `weights` decodes the source
    /// model (once, shared with the evaluation).
    func calibration(
        for source: ModelGraph, weights: () throws -> LlamaWeights, calibratesInPipeline: Bool, textDigest: String?
    ) throws -> PassContext {
        var context = PassContext()
        guard let settings = recipe.calibration else { return context }
        if let path = settings.statistics {
            guard !calibratesInPipeline else {
                throw LatheError.invalidValue(
                    field: "\(recipe.source): calibration.statistics", value: path,
                    expected:
                        "no statistics file in a recipe with a calibrate step (that step measures the model as it stands then)"
                )
            }
            let config = try source.llamaConfig()
            let graph = try ModelInput.open(
                URL(fileURLWithPath: path), options: ReadOptions(diagnostics: diagnostics),
                registry: LatheEnvironment.registry)
            try Self.requireCollected(
                graph, on: settings.file, digest: textDigest, statistics: path, recipe: recipe.source)
            context[CalibrationArtifact.self] = CalibrationMoments(
                try CalibrationStatistics(graph: graph, headDim: config.headDim).takeMoments(), spill: source.spill)
            return context
        }
        guard let description = source.tokenizer else {
            throw LatheError.missingField("tokenizer", in: "\(source.source) (calibration tokenizes its text)")
        }
        let tokens = try BPETokenizer(description).encodeFile(
            URL(fileURLWithPath: settings.file),
            purpose: "calibration text (recipe paths are relative to the working directory; or pass --calibration-text)"
        )
        try CalibrationStatistics.requireEnoughTokens(tokens.count, length: settings.length)
        if calibratesInPipeline {
            // A `calibrate` step runs the model as it stands then; it needs only the tokens.
            context.calibrator = RuntimeCalibrator(
                tokens: tokens, windows: settings.windows, length: settings.length, seed: settings.seed)
            return context
        }
        let config = try source.llamaConfig()
        let statistics = CalibrationStatistics(headDim: config.headDim)
        try statistics.collect(
            LlamaSession(weights: try weights(), maxContext: settings.length),
            tokens: tokens,
            windows: settings.windows, length: settings.length, seed: settings.seed, diagnostics: diagnostics)
        context[CalibrationArtifact.self] = CalibrationMoments(statistics.takeMoments(), spill: source.spill)
        return context
    }

    /// A statistics file stands in for running the calibration text, so it must have been collected
    /// on that text: the manifest records the text's digest, and a file measured on another text
    /// (the evaluation split, say) would otherwise be recorded as the calibration text's.
    static func requireCollected(
        _ statistics: ModelGraph, on text: String, digest: String?, statistics path: String, recipe: String
    ) throws {
        let field = "\(path): lathe.calibration.text_sha256"
        guard let recorded = statistics.metadata["lathe.calibration.text_sha256"]?.stringValue else {
            throw LatheError.missingField(
                "lathe.calibration.text_sha256", in: "\(path) (a statistics file must say which text it measured)")
        }
        let expected = try digest ?? SHA256.file(text)
        guard recorded == expected else {
            let name = statistics.metadata["lathe.calibration.text"]?.stringValue ?? "another text"
            throw LatheError.invalidValue(
                field: field, value: "\(recorded.prefix(12))… (collected on \(name))",
                expected:
                    "the digest of \(recipe)'s calibration text \(URL(fileURLWithPath: text).lastPathComponent) (\(expected.prefix(12))…)"
            )
        }
    }

    /// The seed the calibration windows were drawn with: a statistics file's own (`lathe calibrate
    /// --seed` records it), else the recipe's.
    func calibrationSeed() throws -> UInt64 {
        let seed = recipe.calibration?.seed ?? 0
        guard let path = recipe.calibration?.statistics else { return seed }
        let statistics = try ModelInput.open(URL(fileURLWithPath: path), registry: LatheEnvironment.registry)
        switch statistics.metadata["lathe.calibration.seed"] {
        case .uint64(let recorded): return recorded
        case .string(let recorded): return UInt64(recorded) ?? seed  // safetensors metadata holds strings
        default: return seed
        }
    }

    /// The calibration text's sha256, computed once for the checks, the fingerprints and the
    /// manifest; nil without calibration or when the file is missing (whoever reads it says so).
    func calibrationTextDigest() throws -> String? {
        guard let file = recipe.calibration?.file, FileManager.default.fileExists(atPath: file) else { return nil }
        return try SHA256.file(file)
    }

    /// Calibrating and evaluating on one text would make the evaluation flatter the result.
    func checkTexts(calibrationDigest: String?) throws {
        guard let calibration = recipe.calibration else { return }
        let name = URL(fileURLWithPath: calibration.file).lastPathComponent
        Self.warnIfTestSplit(calibration.file, diagnostics: diagnostics)
        guard let evaluation = recipe.evaluation, let calibrationDigest,
            FileManager.default.fileExists(atPath: evaluation.text)
        else { return }
        if try calibrationDigest == SHA256.file(evaluation.text) {
            throw PipelineError(
                recipe: recipe.source, path: "calibration.file",
                problem:
                    "\(name) is also the evaluation text (evaluate.text); calibrate on other text than you evaluate on")
        }
    }

    /// A warning only: the name is a hint, not proof, but calibrating on the split one reports on
    /// is the mistake most worth catching early.
    static func warnIfTestSplit(_ path: String, diagnostics: Diagnostics) {
        let name = URL(fileURLWithPath: path).lastPathComponent
        guard name.lowercased().contains("test") else { return }
        diagnostics.warning(
            "calibrating on \(name), which looks like a test split; calibrate on held-out text (the validation split) and keep the test split for evaluation"
        )
    }

    /// What determines the calibration statistics, for the checkpoints' fingerprints: the text's
    /// (or the statistics file's) digest, the windows and their length.
    func calibrationFingerprint(textDigest: String?) throws -> JSONValue {
        guard let settings = recipe.calibration else { return .null }
        var fields: [(key: String, value: JSONValue)] = [
            ("windows", .int(settings.windows)), ("length", .int(settings.length)),
        ]
        if let textDigest { fields.append(("text_sha256", .string(textDigest))) }
        if let statistics = settings.statistics {
            fields.append(("statistics_sha256", .string(try SHA256.file(statistics))))
        }
        return .object(fields)
    }

    /// Base versus converted model on the recipe's evaluation text, as the manifest records it.
    func evaluation(base: ModelGraph, weights: () throws -> LlamaWeights, candidate: ModelGraph) throws -> JSONValue? {
        guard let settings = recipe.evaluation, let description = base.tokenizer else { return nil }
        let url = URL(fileURLWithPath: settings.text)
        let tokenizer = try BPETokenizer(description)
        let tokens = try tokenizer.encodeFile(url, purpose: "evaluation text")
        try requireEnoughTokens(tokens.count, context: settings.ctx, scoring: .llama)
        let result = try Verifier.compare(
            base: LlamaSession(weights: try weights(), maxContext: settings.ctx),
            candidate: LlamaSession(weights: try LlamaWeights(candidate), maxContext: settings.ctx), tokens: tokens,
            context: settings.ctx, maxChunks: settings.chunks, windowStart: tokenizer.windowStart,
            diagnostics: diagnostics)
        func number(_ value: Double) -> JSONValue { .number(String(format: "%.9g", value)) }
        return .object([
            ("text", .string(url.lastPathComponent)), ("ctx", .int(settings.ctx)), ("chunks", .int(result.chunks)),
            ("kl_mean", number(result.kl.mean)), ("kl_p99", number(result.kl.p99)),
            ("top1_agreement", number(result.topOneAgreement)),
            ("base_perplexity", number(result.basePerplexity)), ("perplexity", number(result.candidatePerplexity)),
        ])
    }

    /// The first step to run when the steps up to `done` have checkpoints. Artifacts (statistics,
    /// bases) live only in memory, so a later step that needs one made earlier sends the run back to
    /// the step that made it.
    static func restartPoint(after done: Int, _ steps: [PassPlan]) -> Int {
        var restart = done + 1
        while restart > 0 {
            let needed = Set(steps[min(restart, steps.count)...].flatMap(\.requires))
            guard
                let producer = steps[..<restart].lastIndex(where: { !Set($0.produces).isDisjoint(with: needed) }),
                producer < restart
            else { break }
            restart = producer
        }
        return restart
    }

    /// Runs the steps and returns the named output's graph (`finish`ed: prepared for its format) and
    /// the steps' own result, from which each further output is prepared for its format; both carry
    /// the manifest (unless disabled).
    func run(
        on source: ModelGraph, registry: Registry, format: String, withManifest: Bool,
        finish: (ModelGraph) throws -> ModelGraph
    ) throws -> (output: ModelGraph, steps: ModelGraph) {
        var resolved = recipe
        // The outputs convert writes: the command line's, standing for the recipe's first, then the
        // recipe's further formats beside it. Strictness and the manifest concern only these.
        resolved.outputs =
            [recipe.outputs.first { $0.format == format } ?? Recipe.Output(format: format)]
            + recipe.outputs.dropFirst().filter { $0.format != format }
        let (passes, plan) = try Pipeline.plan(resolved, for: source, registry: registry)
        // The input is hashed at most once, for the checkpoints' fingerprints and the manifest.
        var inputDigests: [JSONValue]?
        func digests() throws -> [JSONValue] {
            if let inputDigests { return inputDigests }
            let computed = try Provenance.digests(input)
            inputDigests = computed
            return computed
        }
        let textDigest = try calibrationTextDigest()
        try checkTexts(calibrationDigest: textDigest)
        let checkpoints = try workDirectory.map {
            try Checkpoints(
                directory: $0, recipe: resolved, inputDigests: try digests(),
                seed: recipe.calibration?.seed ?? 0, calibration: try calibrationFingerprint(textDigest: textDigest))
        }
        var start = source
        var first = 0
        if resume, let checkpoints, let done = checkpoints.latestComplete() {
            let restart = Self.restartPoint(after: done, plan.steps.map(\.plan))
            if restart > 0 {
                start = try checkpoints.load(after: restart - 1, source: source.source)
                start.spill = source.spill
                first = restart
                diagnostics.info("resuming after step \(restart) of \(passes.count) from \(checkpoints.directory.path)")
            }
        }
        // The source's weights are decoded at most once, for calibration and evaluation alike.
        var decoded: LlamaWeights?
        func sourceWeights() throws -> LlamaWeights {
            if let decoded { return decoded }
            let weights = try LlamaWeights(source, diagnostics: diagnostics)
            decoded = weights
            return weights
        }
        let calibratesInPipeline = plan.steps.contains { $0.plan.produces.contains(CalibrationArtifact.name) }
        var context =
            first < passes.count
            ? try calibration(
                for: source, weights: sourceWeights, calibratesInPipeline: calibratesInPipeline, textDigest: textDigest)
            : PassContext()
        context.registry = registry
        var steps = try Pipeline.run(passes, on: start, context: context, diagnostics: diagnostics, startingAt: first) {
            step, graph in
            try checkpoints?.save(graph, after: step)
        }
        var graph = try finish(steps)
        guard withManifest else { return (graph, steps) }
        let verification = try evaluation(base: source, weights: sourceWeights, candidate: graph)
        let manifest = try Provenance.manifest(
            recipe: resolved, input: input, inputDigests: try digests(),
            calibrationText: recipe.calibration.map { URL(fileURLWithPath: $0.file) },
            calibrationTextDigest: textDigest,
            calibrationStatistics: recipe.calibration?.statistics.map { URL(fileURLWithPath: $0) },
            seed: try calibrationSeed(),
            graph: graph, verification: verification)
        graph.metadata[Provenance.metadataKey] = .string(manifest.serialized())
        steps.metadata[Provenance.metadataKey] = graph.metadata[Provenance.metadataKey]
        return (graph, steps)
    }
}

/// Calibration backed by the runtime: the graph as it stands is decoded and run over seeded windows
/// of the calibration tokens, the session's threads splitting each batch over single-threaded BLAS.
struct RuntimeCalibrator: Calibrator {
    let tokens: [Int]
    let windows: Int
    let length: Int
    let seed: UInt64

    func statistics(of graph: ModelGraph, diagnostics: Diagnostics) throws -> CalibrationMoments {
        let config = try graph.llamaConfig()
        let statistics = CalibrationStatistics(headDim: config.headDim)
        let cores = max(1, RuntimeOptions.defaultThreadCount)
        statistics.threads = cores
        // One layer decoded at a time, not the whole model; the statistics are the same. Finished
        // layers' statistics go to the graph's spill files.
        let moments = CalibrationMoments(spill: graph.spill)
        try BLAS.withThreadCount(1) {
            try statistics.collectLayerByLayer(
                graph, into: moments, tokens: tokens, windows: windows, length: length, seed: seed, threads: cores,
                diagnostics: diagnostics)
        }
        return moments
    }

    func layerwise(_ graph: ModelGraph, diagnostics: Diagnostics) throws -> any LayerwiseCalibration {
        try LayerWalk(
            graph, tokens: tokens, windows: windows, length: length, seed: seed,
            threads: max(1, RuntimeOptions.defaultThreadCount))
    }
}

import Foundation
import LatheCore

/// A recipe resolved against a model: every step built from the registry, ordered by the artifacts
/// they exchange, and planned on a shadow of the model, before any heavy work.
public struct PipelinePlan: Sendable {
    public struct Step: Sendable {
        public var index: Int
        public var passID: String
        public var plan: PassPlan
    }

    /// One output as its writer will get it: after the writer's preparation (lpack packs the
    /// quantized matrices) and with the tensors the format cannot hold fallen back to F32.
    public struct Output: Sendable {
        public var format: String
        public var bytes: Int
        public var elements: Int
        /// Tensors the format cannot hold, falling back to F32 (refused when the recipe is strict).
        public var fallbacks: [TensorDecision]

        public var bitsPerWeight: Double { elements == 0 ? 0 : Double(bytes) * 8 / Double(elements) }
    }

    public var recipe: Recipe
    public var steps: [Step]
    /// One estimate per output of the recipe, in its order.
    public var outputs: [Output]

    /// Every output's fallbacks.
    public var fallbacks: [TensorDecision] { outputs.flatMap(\.fallbacks) }
    /// The first output's size (the one `lathe convert -o` stands for).
    public var outputBytes: Int { outputs.first?.bytes ?? 0 }
    public var bitsPerWeight: Double { outputs.first?.bitsPerWeight ?? 0 }
}

public enum Pipeline {
    /// Builds, orders, validates and plans `recipe` on `graph`. Nothing is read beyond headers.
    /// `provided` names artifacts available before the first step (the calibration statistics, when
    /// the recipe calibrates).
    public static func plan(
        _ recipe: Recipe, for graph: ModelGraph, registry: Registry, strict: Bool? = nil, provided: Set<String>? = nil
    ) throws -> (passes: [any ModelPass], plan: PipelinePlan) {
        let provided = provided ?? (recipe.calibration == nil ? [] : [CalibrationArtifact.name])
        var built: [(index: Int, pass: any ModelPass)] = []
        for (index, step) in recipe.steps.enumerated() {
            do {
                built.append((index, try registry.pass(step.pass, options: Data(step.options.serialized().utf8))))
            } catch let error as LatheError {
                // A step from an included recipe is that recipe's, with the options given here merged in.
                let origin = step.origin.map { " (included from \($0))" } ?? ""
                throw PipelineError(
                    recipe: recipe.source, path: "steps[\(index)]\(origin)",
                    problem: error.errorDescription ?? "\(error)")
            }
        }
        for (index, output) in recipe.outputs.enumerated() {
            let writer: any FormatWriter
            do { writer = try registry.writer(output.format) } catch {
                throw PipelineError(
                    recipe: recipe.source, path: "outputs[\(index)].format",
                    problem: error.errorDescription ?? "\(error)")
            }
            let known = type(of: writer).parameterNames
            if let key = output.options.keys.sorted().first(where: { !known.contains($0) }) {
                throw PipelineError(
                    recipe: recipe.source, path: "outputs[\(index)].options.\(key)",
                    problem: "the \(output.format) writer has no such option"
                        + (known.isEmpty ? " (it takes none)" : " (it takes \(known.joined(separator: ", ")))"))
            }
            do { try type(of: writer).validate(parameters: output.options) } catch {
                throw PipelineError(
                    recipe: recipe.source, path: "outputs[\(index)].options",
                    problem: error.errorDescription ?? "\(error)")
            }
        }

        // Plan step by step on a shadow graph whose tensor infos follow the decisions.
        var shadow = graph
        var planned: [(index: Int, pass: any ModelPass, plan: PassPlan)] = []
        for (index, pass) in built {
            do {
                let plan = try pass.plan(shadow)
                try follow(plan, in: &shadow)
                planned.append((index, pass, plan))
            } catch let error as PipelineError {
                throw error
            } catch {
                throw PipelineError(
                    recipe: recipe.source, path: "steps[\(index)] (\(recipe.steps[index].pass))",
                    problem: (error as? LatheError)?.errorDescription ?? "\(error)")
            }
        }
        let ordered = try order(planned, recipe: recipe, provided: provided)
        let isStrict = strict ?? recipe.strict
        if isStrict, let step = planned.first(where: { !$0.plan.skipped.isEmpty }) {
            throw PipelineError(
                recipe: recipe.source, path: "steps[\(step.index)] (\(recipe.steps[step.index].pass))",
                problem: "would skip \(step.plan.skipped.joined(separator: "; ")); set strict: false to allow it")
        }
        var outputs: [PipelinePlan.Output] = []
        for (index, output) in recipe.outputs.enumerated() {
            let writer = try registry.writer(output.format)
            var written = shadow
            if let preparation = try registry.preparation(for: output.format) {
                do { try follow(try preparation.plan(written), in: &written) } catch {
                    throw PipelineError(
                        recipe: recipe.source, path: "outputs[\(index)] (\(output.format))",
                        problem: (error as? LatheError)?.errorDescription ?? "\(error)")
                }
            }
            for tensor in written.tensors {
                guard let preferred = type(of: writer).preferredType(for: tensor.info) else { continue }
                try written.replace(
                    shadowTensor(TensorInfo(name: tensor.name, dtype: preferred, shape: tensor.info.shape)))
            }
            var fallbacks: [TensorDecision] = []
            for tensor in written.tensors where !type(of: writer).supports(tensor.info.dtype) {
                if isStrict {
                    throw PipelineError(
                        recipe: recipe.source, path: "outputs",
                        problem:
                            "tensor '\(tensor.name)' would be \(tensor.info.dtype), which \(output.format) cannot store; add a step that converts it, or set strict: false to fall back to F32"
                    )
                }
                fallbacks.append(
                    TensorDecision(
                        tensor: tensor.name, from: tensor.info.dtype, to: .f32,
                        reason: "\(output.format) cannot store \(tensor.info.dtype)"))
                try written.replace(shadowTensor(TensorInfo(name: tensor.name, dtype: .f32, shape: tensor.info.shape)))
            }
            let (bytes, elements) = try written.totals()
            outputs.append(.init(format: output.format, bytes: bytes, elements: elements, fallbacks: fallbacks))
        }
        // The plan reports the strictness it was made with (an override included).
        var planRecipe = recipe
        planRecipe.strict = isStrict
        let plan = PipelinePlan(
            recipe: planRecipe,
            steps: ordered.map {
                PipelinePlan.Step(index: $0.index, passID: recipe.steps[$0.index].pass, plan: $0.plan)
            },
            outputs: outputs)
        return (ordered.map(\.pass), plan)
    }

    /// A tensor of the plan's shadow graph: its header only.
    static func shadowTensor(_ info: TensorInfo) -> Tensor {
        Tensor(info: info) {
            throw LatheError.notImplemented(capability: "reading a planned tensor", detail: "plans never read data")
        }
    }

    /// Makes the shadow graph's headers what `plan` says the pass leaves.
    static func follow(_ plan: PassPlan, in shadow: inout ModelGraph) throws {
        for info in plan.addedTensors where shadow[info.name] == nil { try shadow.append(shadowTensor(info)) }
        for decision in plan.decisions {
            let shape = try shadow.tensor(named: decision.tensor).info.shape
            try shadow.replace(shadowTensor(TensorInfo(name: decision.tensor, dtype: decision.to, shape: shape)))
        }
        for (key, value) in plan.recordedMetadata { shadow.metadata[key] = value }
    }

    /// Orders steps so every artifact is produced before it is consumed (recipe order otherwise),
    /// refusing missing artifacts and cycles.
    static func order(
        _ steps: [(index: Int, pass: any ModelPass, plan: PassPlan)], recipe: Recipe, provided: Set<String>
    ) throws -> [(index: Int, pass: any ModelPass, plan: PassPlan)] {
        var producers: [String: Int] = [:]
        for (position, step) in steps.enumerated() {
            for artifact in step.plan.produces { producers[artifact] = producers[artifact] ?? position }
        }
        // An artifact a step produces comes from that step, even if the caller could provide it.
        let provided = provided.subtracting(producers.keys)
        var dependencies: [Set<Int>] = []
        for step in steps {
            var needs = Set<Int>()
            for artifact in step.plan.requires where !provided.contains(artifact) {
                guard let producer = producers[artifact] else {
                    throw PipelineError(
                        recipe: recipe.source, path: "steps[\(step.index)] (\(recipe.steps[step.index].pass))",
                        problem: "needs the artifact '\(artifact)', which no step of the recipe produces")
                }
                needs.insert(producer)
            }
            dependencies.append(needs)
        }
        var done = Set<Int>()
        var result: [(index: Int, pass: any ModelPass, plan: PassPlan)] = []
        while result.count < steps.count {
            guard let next = steps.indices.first(where: { !done.contains($0) && dependencies[$0].isSubset(of: done) })
            else {
                let stuck = steps.indices.filter { !done.contains($0) }.map {
                    "steps[\(steps[$0].index)] (\(recipe.steps[steps[$0].index].pass))"
                }
                throw PipelineError(
                    recipe: recipe.source, path: "steps",
                    problem: "the artifacts form a cycle between \(stuck.joined(separator: ", "))")
            }
            done.insert(next)
            result.append(steps[next])
        }
        return result
    }

    /// Applies the planned passes in order. Conversions stay lazy: tensors are computed when written.
    public static func run(
        _ passes: [any ModelPass], on graph: ModelGraph, context: PassContext = PassContext(),
        diagnostics: Diagnostics = .silent, startingAt first: Int = 0,
        afterStep: (_ step: Int, _ graph: ModelGraph) throws -> Void = { _, _ in }
    ) throws -> ModelGraph {
        var graph = graph
        var context = context
        context.diagnostics = diagnostics
        let started = Date()
        for index in first..<passes.count {
            let pass = passes[index]
            let done = index - first
            let elapsed = Date().timeIntervalSince(started)
            let eta =
                done > 0
                ? String(format: ", about %.0f s left", elapsed / Double(done) * Double(passes.count - index)) : ""
            diagnostics.progress(
                .transforming, fraction: Double(index) / Double(max(passes.count, 1)),
                "step \(index + 1)/\(passes.count): \(type(of: pass).passID)\(eta)")
            let stepStarted = Date()
            try pass.apply(&graph, context: &context)
            let peak = ProcessMemory.peakResidentBytes().map {
                String(format: ", peak RSS so far %.0f MiB", Double($0) / 1_048_576)
            }
            diagnostics.info(
                String(
                    format: "step %d/%d %@: %.1f s%@", index + 1, passes.count, type(of: pass).passID,
                    Date().timeIntervalSince(stepStarted), peak ?? ""))
            try afterStep(index, graph)
        }
        return graph
    }
}

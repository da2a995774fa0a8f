import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline

/// `lathe plan`: a recipe's dry run on a model.
struct Plan: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what a recipe would do to a model, without doing it.",
        discussion: """
            Builds every step of the recipe, orders the steps by the artifacts they exchange, and plans them on \
            the model's headers alone: every per-tensor decision, every fallback, the estimated peak memory of \
            each step, and each output's size and bits per weight as its writer will store it (lpack packs the \
            quantized matrices; a fallback is counted at F32). Built-in recipes are strict: a tensor an output \
            cannot store is an error rather than a silent F32 fallback (--no-strict allows it).

            RECIPE is a built-in name (see `lathe recipes`) or a YAML/JSON file.
            Example:
              lathe plan q4_0 model.gguf
            """
    )

    @Argument(help: "A built-in recipe name or a recipe file.") var recipe: String
    @Argument(help: "The input model (default: the recipe's input).") var model: String?
    @Flag(inversion: .prefixedNo, help: "Fail on any fallback (default: the recipe's setting).") var strict: Bool?
    @Flag(help: "List every per-tensor decision, not only a summary per step.") var tensors = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var input: InputOptions
    @OptionGroup var external: ExternalPassOptions

    func run() throws {
        external.apply()
        let printer = StderrDiagnostics(verbose: input.verbose)
        let recipe = try RecipeLibrary.load(recipe)
        guard let model = model ?? recipe.input else {
            throw UsageError("name the input model, or give the recipe an `input:`")
        }
        let graph = try ModelInput.open(
            URL(fileURLWithPath: model), format: input.format, options: ReadOptions(diagnostics: printer.diagnostics),
            registry: LatheEnvironment.registry)
        let (_, plan) = try Pipeline.plan(recipe, for: graph, registry: LatheEnvironment.registry, strict: strict)
        let note = try Self.llamaCppNote(plan.recipe, input: graph)
        if json {
            printJSON(Self.json(plan, model: graph.source, llamaCpp: note))
        } else {
            print(Self.text(plan, model: graph.source, allTensors: tensors, llamaCpp: note))
        }
    }

    static func text(_ plan: PipelinePlan, model: String, allTensors: Bool, llamaCpp: String) -> String {
        var lines = [
            "Recipe: \(plan.recipe.name) (\(plan.recipe.source))\(plan.recipe.strict ? ", strict" : "")",
            "  \(plan.recipe.description)", "Model:  \(model)", "Steps:",
        ]
        for (position, step) in plan.steps.enumerated() {
            let counts = Dictionary(grouping: step.plan.decisions) { "\($0.from) → \($0.to)" }.mapValues(\.count)
            let summary = counts.sorted { $0.key < $1.key }.map { "\($0.value) × \($0.key)" }.joined(separator: ", ")
            lines.append(
                "  \(position + 1). \(step.passID): \(step.plan.decisions.count) tensors re-encoded\(summary.isEmpty ? "" : " (\(summary))"), "
                    + "peak ≈ \(formatBytes(step.plan.peakBytes))")
            if !step.plan.requires.isEmpty { lines.append("     needs: \(step.plan.requires.joined(separator: ", "))") }
            if !step.plan.produces.isEmpty { lines.append("     makes: \(step.plan.produces.joined(separator: ", "))") }
            for note in step.plan.notes { lines.append("     \(note)") }
            for skipped in step.plan.skipped { lines.append("     skipped: \(skipped)") }
            if allTensors {
                for decision in step.plan.decisions {
                    lines.append("     \(decision.tensor): \(decision.from) → \(decision.to)")
                }
            }
        }
        lines.append(
            "Fallbacks: "
                + (plan.fallbacks.isEmpty
                    ? "none" : plan.fallbacks.map { "\($0.tensor) → F32 (\($0.reason))" }.joined(separator: "; ")))
        lines.append("GGUF for llama.cpp: " + llamaCpp)
        // Tensor bytes as each writer gets them (lpack's matrices packed, fallbacks at F32); headers
        // and compression are left out.
        lines.append("Estimated outputs (tensor data):")
        for (output, format) in zip(plan.outputs, plan.recipe.outputs) {
            let compressed = format.options["compression"].map { $0 == "none" ? "" : ", before \($0)" } ?? ""
            lines.append(
                String(
                    format: "  %@: %@, %.3f bits/weight%@", output.format, formatBytes(output.bytes),
                    output.bitsPerWeight, compressed))
        }
        return lines.joined(separator: "\n")
    }

    /// What a GGUF export of the recipe's result cannot carry for llama.cpp: what the input model
    /// already has (its transform and quantization records, as `convert --for-llama-cpp` reads them),
    /// then what the recipe's steps add.
    static func llamaCppNote(_ recipe: Recipe, input: ModelGraph) throws -> String {
        let existing = try LlamaCppCompatibility(
            metadata: input.metadata, tensorNames: input.tensorNames, config: input.config)
        var blocking = existing.blocking.map { "\($0) (in the input)" }
        var ignored: [String] = []
        let sites = existing.ignored.filter { $0.hasPrefix("activation quantization") }.count
        if sites > 0 { ignored.append("activation quantization at \(sites) site(s) (in the input)") }
        ignored += existing.ignored.filter { !$0.hasPrefix("activation quantization") }.map { "\($0) (in the input)" }
        for step in recipe.steps {
            switch step.pass {
            case "online-hadamard" where !blocking.contains(where: { $0.hasPrefix("U_D") }):
                blocking.append("U_D (online Hadamard before down_proj)")
            case "rotate"
            where step.options["keys"]?.boolValue != false && !blocking.contains(where: { $0.hasPrefix("U_C") }):
                blocking.append("U_C (online q/k rotation after RoPE)")
            case "quantize-activations" where sites == 0: ignored.append("activation quantization")
            case "quantize-kv" where !ignored.contains(where: { $0.hasPrefix("KV-cache") }):
                ignored.append("KV-cache quantization")
            case "pack-weights": ignored.append("packed int4/int8 weights (re-encode with --type)")
            default: break
            }
        }
        var parts: [String] = []
        if !blocking.isEmpty { parts.append("not representable: " + blocking.joined(separator: ", ")) }
        if !ignored.isEmpty { parts.append("not applied by llama.cpp: " + ignored.joined(separator: ", ")) }
        return parts.isEmpty ? "every transform is fused into the weights" : parts.joined(separator: "; ")
    }

    static func json(_ plan: PipelinePlan, model: String, llamaCpp: String) -> JSONValue {
        .object([
            ("recipe", .string(plan.recipe.name)), ("source", .string(plan.recipe.source)),
            ("strict", .bool(plan.recipe.strict)),
            ("model", .string(model)),
            (
                "steps",
                .array(
                    plan.steps.map { step in
                        .object([
                            ("index", .int(step.index)), ("pass", .string(step.passID)),
                            ("peak_bytes", .int(step.plan.peakBytes)),
                            ("requires", .array(step.plan.requires.map(JSONValue.string))),
                            ("produces", .array(step.plan.produces.map(JSONValue.string))),
                            ("skipped", .array(step.plan.skipped.map(JSONValue.string))),
                            (
                                "decisions",
                                .array(
                                    step.plan.decisions.map {
                                        .object([
                                            ("tensor", .string($0.tensor)), ("from", .string("\($0.from)")),
                                            ("to", .string("\($0.to)")),
                                        ])
                                    })
                            ),
                        ])
                    })
            ),
            (
                "fallbacks",
                .array(
                    plan.outputs.flatMap { output in
                        output.fallbacks.map {
                            .object([
                                ("tensor", .string($0.tensor)), ("from", .string("\($0.from)")), ("to", .string("F32")),
                                ("output", .string(output.format)),
                            ])
                        }
                    })
            ),
            (
                "outputs",
                .array(
                    plan.outputs.map {
                        .object([
                            ("format", .string($0.format)), ("bytes", .int($0.bytes)),
                            ("bits_per_weight", .number(String(format: "%.4f", $0.bitsPerWeight))),
                            ("fallbacks", .int($0.fallbacks.count)),
                        ])
                    })
            ),
            ("llama_cpp", .string(llamaCpp)),
            ("output_bytes", .int(plan.outputBytes)),
            ("bits_per_weight", .number(String(format: "%.4f", plan.bitsPerWeight))),
        ])
    }
}

/// `lathe recipes`: the built-in recipes.
struct Recipes: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in recipes.",
        discussion: """
            A recipe is a pipeline of passes with its outputs, calibration and evaluation settings. Give its \
            name (or a YAML recipe file of your own: the recipe schema is in the LatheCore documentation) to \
            `lathe plan` to see what it would do to a model, and to `lathe convert --recipe` to run it.

            Examples:
              lathe recipes
              lathe plan resq-w4a4kv4 model.gguf
              lathe convert model.gguf --recipe resq-w4a4kv4 -o model-resq.lpack
            """
    )

    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let recipes = try RecipeLibrary.builtinNames.map { try RecipeLibrary.load($0) }
        if json {
            printJSON(
                .array(recipes.map { .object([("name", .string($0.name)), ("description", .string($0.description))]) }))
            return
        }
        let width = recipes.map(\.name.terminalWidth).max() ?? 0
        for recipe in recipes {
            print(recipe.name.padded(toColumns: width + 2) + recipe.description)
        }
    }
}

import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheTestSupport
import Testing

enum BasisArtifact: PassArtifactKey {
    typealias Value = [Float]
    static let name = "basis"
}

/// Produces the `basis` artifact.
struct ProducerPass: ModelPass {
    struct Options: Codable, Sendable { var needs: String? }
    static let passID = "producer"
    static let summary = "test: produces a basis"
    let needs: String?
    init(options: Options) { needs = options.needs }
    func plan(_ graph: ModelGraph) throws -> PassPlan {
        PassPlan(requires: needs.map { [$0] } ?? [], produces: ["basis"])
    }
    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        context[BasisArtifact.self] = [1, 2, 3]
    }
}

/// Consumes `basis`, and may produce another artifact.
struct ConsumerPass: ModelPass {
    struct Options: Codable, Sendable { var makes: String? }
    static let passID = "consumer"
    static let summary = "test: needs a basis"
    let makes: String?
    init(options: Options) { makes = options.makes }
    func plan(_ graph: ModelGraph) throws -> PassPlan {
        PassPlan(requires: ["basis"], produces: makes.map { [$0] } ?? [])
    }
    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        _ = try context.require(BasisArtifact.self, by: Self.passID)
    }
}

func testRegistry() throws -> Registry {
    var builder = RegistryBuilder()
    try builder.register(pass: ProducerPass.self)
    try builder.register(pass: ConsumerPass.self)
    return builder.build()
}

func recipe(_ yaml: String) throws -> Recipe {
    try Recipe.parse(yaml, source: "test.yaml") { try RecipeLibrary.load($0) }
}

@Suite("Pipeline")
struct PipelineTests {
    @Test("an unknown pass id is an error naming the step and listing the known ids")
    func unknownPass() throws {
        let graph = try TinyModel.graph()
        #expect {
            try Pipeline.plan(recipe("steps:\n  - pass: pca\n"), for: graph, registry: LatheBuiltins.registry)
        } throws: { error in
            let message = (error as? PipelineError)?.errorDescription ?? ""
            return message.hasPrefix("test.yaml: steps[0]: unknown pass 'pca'") && message.contains("quantize-ggml")
        }
    }

    @Test("a bad option names its path in the recipe")
    func badOption() throws {
        let graph = try TinyModel.graph()
        #expect {
            try Pipeline.plan(
                recipe("steps:\n  - pass: quantize-ggml\n    options:\n      type: q3_x\n"), for: graph,
                registry: LatheBuiltins.registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.contains(
                "steps[0]: options of pass 'quantize-ggml': type: got q3_x") == true
        }
        #expect {
            try Pipeline.plan(
                recipe("steps:\n  - pass: quantize-ggml\n    options:\n      tensors: attn\n"), for: graph,
                registry: LatheBuiltins.registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.contains("steps[0]: test.yaml") == false
                && (error as? PipelineError)?.errorDescription?.contains("missing required field 'type'") == true
        }
    }

    @Test("a missing artifact names the step that needs it")
    func missingArtifact() throws {
        #expect {
            try Pipeline.plan(recipe("steps:\n  - pass: consumer\n"), for: TinyModel.graph(), registry: testRegistry())
        } throws: { error in
            (error as? PipelineError)?.errorDescription
                == "test.yaml: steps[0] (consumer): needs the artifact 'basis', which no step of the recipe produces"
        }
    }

    @Test("steps are reordered so producers run first; cycles are refused")
    func ordering() throws {
        let (passes, plan) = try Pipeline.plan(
            recipe("steps:\n  - pass: consumer\n  - pass: producer\n"), for: TinyModel.graph(), registry: testRegistry()
        )
        #expect(plan.steps.map(\.passID) == ["producer", "consumer"])
        _ = try Pipeline.run(passes, on: TinyModel.graph())
        #expect {
            try Pipeline.plan(
                recipe(
                    "steps:\n  - pass: consumer\n    options: {makes: other}\n  - pass: producer\n    options: {needs: other}\n"
                ),
                for: TinyModel.graph(), registry: testRegistry())
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.contains(
                "the artifacts form a cycle between steps[0] (consumer), steps[1] (producer)") == true
        }
    }

    @Test("the plan of a built-in recipe lists every decision, the output size and bits per weight")
    func builtinPlan() throws {
        let graph = try TinyModel.graph()
        let (_, plan) = try Pipeline.plan(try RecipeLibrary.load("q8_0"), for: graph, registry: LatheBuiltins.registry)
        let matrices = graph.tensors.filter { $0.info.shape.rank == 2 }
        #expect(plan.recipe.source == "builtin:q8_0" && plan.recipe.strict)
        #expect(plan.steps.count == 1)
        #expect(plan.steps[0].plan.decisions.map(\.tensor) == matrices.map(\.name))
        #expect(plan.steps[0].plan.decisions.allSatisfy { $0.to == .quantized(.ggml(.q8_0)) })
        #expect(plan.fallbacks.isEmpty)
        let expectedBytes = try graph.tensors.reduce(0) { total, tensor in
            total
                + (tensor.info.shape.rank == 2
                    ? try DType.quantized(.ggml(.q8_0)).byteCount(for: tensor.info.shape) : try tensor.info.byteCount())
        }
        #expect(plan.outputBytes == expectedBytes)
        #expect(plan.bitsPerWeight > 8.5 && plan.bitsPerWeight < 9)
    }

    @Test("errors about an include name the including recipe's key; errors in an included step name its recipe")
    func includeErrors() throws {
        #expect(throws: PipelineError(recipe: "test.yaml", path: "include", problem: "nope: not found")) {
            try Recipe.parse("include: nope", source: "test.yaml") { name in
                throw PipelineError(recipe: name, path: "", problem: "not found")
            }
        }
        let inner = try Recipe.parse(
            "name: inner\nsteps:\n  - pass: pca-basis\n    options: {rankFracton: 0.1}\n", source: "inner.yaml"
        ) { try RecipeLibrary.load($0) }
        let outer = try Recipe.parse("include: inner", source: "outer.yaml") { _ in inner }
        #expect {
            try Pipeline.plan(outer, for: TinyModel.graph(), registry: LatheBuiltins.registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.hasPrefix(
                "outer.yaml: steps[0] (included from inner.yaml): options of pass 'pca-basis': got 'rankFracton'")
                == true
        }
    }

    @Test("an included recipe's options can be overridden by pass id")
    func includes() throws {
        let merged = try recipe(
            "include: q4_1\noptions:\n  quantize-ggml:\n    overrides:\n      - {pattern: token_embd, type: q8_0}\n")
        #expect(merged.steps.count == 1)
        #expect(merged.steps[0].options["type"] == .string("q4_1"))
        #expect(merged.steps[0].options["overrides"]?.arrayValue?.count == 1)
        #expect(try RecipeLibrary.load("q4_1-q8-embed").steps[0].options == merged.steps[0].options)
        #expect(throws: PipelineError.self) { try recipe("include: q4_1\noptions:\n  cast: {to: f16}\n") }
    }

    @Test("strict recipes refuse a tensor the output cannot store")
    func strictness() throws {
        var yaml = "steps:\n  - pass: quantize-ggml\n    options: {type: q8_0}\noutputs:\n  - format: safetensors\n"
        #expect(throws: PipelineError.self) {
            try Pipeline.plan(recipe(yaml), for: TinyModel.graph(), registry: LatheBuiltins.registry)
        }
        yaml += "strict: false\n"
        let (_, plan) = try Pipeline.plan(recipe(yaml), for: TinyModel.graph(), registry: LatheBuiltins.registry)
        let matrices = try TinyModel.graph().tensors.filter { $0.info.shape.rank == 2 }.count
        #expect(plan.fallbacks.count == matrices)
    }

    @Test("an output's options are the writer's parameters: a key the writer does not read is refused")
    func outputOptions() throws {
        let known =
            "steps:\n  - pass: cast\n    options: {to: f16}\noutputs:\n  - format: lpack\n    options: {compression: zstd}\n"
        _ = try Pipeline.plan(recipe(known), for: TinyModel.graph(), registry: LatheBuiltins.registry)
        #expect {
            try Pipeline.plan(
                recipe(known.replacingOccurrences(of: "compression", with: "compresion")), for: TinyModel.graph(),
                registry: LatheBuiltins.registry)
        } throws: { error in
            let message = (error as? PipelineError)?.errorDescription ?? ""
            return message.contains("outputs[0].options.compresion: the lpack writer has no such option")
                && message.contains("compression, level")
        }
        // Values too are checked at plan time, before any pass runs.
        for (bad, expected) in [("compression: lz4", "none or zstd"), ("level: high", "a zstd level from 1 to 22")] {
            #expect {
                try Pipeline.plan(
                    recipe(known.replacingOccurrences(of: "compression: zstd", with: bad)), for: TinyModel.graph(),
                    registry: LatheBuiltins.registry)
            } throws: { error in
                let message = (error as? PipelineError)?.errorDescription ?? ""
                return message.contains("outputs[0].options:") && message.contains(expected)
            }
        }
    }

    @Test("every built-in recipe loads and plans on the tiny model", arguments: RecipeLibrary.builtinNames)
    func builtins(name: String) throws {
        let loaded = try RecipeLibrary.load(name)
        #expect(!loaded.description.isEmpty)
        let graph = try TinyModel.graph()
        let (passes, plan) = try Pipeline.plan(loaded, for: graph, registry: LatheBuiltins.registry)
        #expect(passes.count == loaded.steps.count && plan.steps.count == loaded.steps.count)
        #expect(plan.steps.map(\.index).sorted() == Array(loaded.steps.indices))
        #expect(plan.steps.allSatisfy { $0.passID == loaded.steps[$0.index].pass })
        // Recipes that re-encode (cast, quantize-ggml) plan an output smaller than the tiny model's F32
        // tensors; the others write a simulated F32 model (an untied head included), at least as large.
        let (inputBytes, _) = try graph.totals()
        let reencodes = loaded.steps.contains { ["cast", "quantize-ggml"].contains($0.pass) }
        #expect(plan.outputBytes > 0)
        #expect(reencodes == (plan.outputBytes < inputBytes), "\(plan.outputBytes) of \(inputBytes)")
    }
}

/// Needs the calibration statistics and records how many it saw.
struct CalibrationConsumer: ModelPass {
    struct Options: Codable, Sendable {}
    static let passID = "needs-calibration"
    static let summary = "test: reads the calibration artifact"
    init(options: Options) {}
    func plan(_ graph: ModelGraph) throws -> PassPlan { PassPlan(requires: [CalibrationArtifact.name]) }
    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let moments = try context.require(CalibrationArtifact.self, by: Self.passID)
        graph.metadata["test.moments"] = .uint32(UInt32(moments.count))
    }
}

@Suite("Pipeline calibration artifact")
struct PipelineCalibrationTests {
    @Test("a recipe that calibrates provides the artifact to the steps that need it")
    func provided() throws {
        var builder = RegistryBuilder()
        try builder.register(pass: CalibrationConsumer.self)
        let registry = builder.build()
        let graph = try TinyModel.graph()
        #expect(throws: PipelineError.self) {
            try Pipeline.plan(recipe("steps:\n  - pass: needs-calibration\n"), for: graph, registry: registry)
        }
        let calibrating = try recipe(
            "calibration: {file: valid.txt, windows: 2}\nsteps:\n  - pass: needs-calibration\n")
        #expect(calibrating.calibration?.windows == 2)
        let (passes, _) = try Pipeline.plan(calibrating, for: graph, registry: registry)
        var context = PassContext()
        context[CalibrationArtifact.self] = CalibrationMoments(["attn_input.0": ActivationMoments(width: 4)])
        let result = try Pipeline.run(passes, on: graph, context: context)
        #expect(result.metadata["test.moments"] == .uint32(1))
    }
}

/// Skips every tensor, to exercise strictness.
struct SkippingPass: ModelPass {
    struct Options: Codable, Sendable {}
    static let passID = "skipper"
    static let summary = "test: skips tensors"
    init(options: Options) {}
    func plan(_ graph: ModelGraph) throws -> PassPlan { PassPlan(skipped: ["model.norm.weight (test)"]) }
    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {}
}

@Suite("Pipeline strictness")
struct PipelineStrictnessTests {
    @Test("a strict recipe fails on a skipped tensor; a lenient one lists it")
    func skipped() throws {
        var builder = RegistryBuilder()
        try builder.register(pass: SkippingPass.self)
        let registry = builder.build()
        #expect {
            try Pipeline.plan(recipe("steps:\n  - pass: skipper\n"), for: TinyModel.graph(), registry: registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription
                == "test.yaml: steps[0] (skipper): would skip model.norm.weight (test); set strict: false to allow it"
        }
        let (_, plan) = try Pipeline.plan(
            recipe("strict: false\nsteps:\n  - pass: skipper\n"), for: TinyModel.graph(), registry: registry)
        #expect(plan.steps[0].plan.skipped == ["model.norm.weight (test)"])
    }
}

@Suite("Recipe without")
struct RecipeWithoutTests {
    @Test("without drops the included recipe's steps by pass id; a pass it lacks is an error naming the field")
    func without() throws {
        let recipe = try Recipe.parse(
            "include: resq-w4a4kv4\nwithout: [quantize-kv, quantize-activations]", source: "t.yaml",
            resolve: { try RecipeLibrary.load($0) })
        let full = try RecipeLibrary.load("resq-w4a4kv4")
        #expect(
            recipe.steps.map(\.pass)
                == full.steps.map(\.pass).filter { !$0.hasPrefix("quantize-a") && $0 != "quantize-kv" })
        #expect(recipe.steps.count == full.steps.count - 2)
        do {
            _ = try Recipe.parse(
                "include: q4_0\nwithout: [rotate]", source: "u.yaml", resolve: { try RecipeLibrary.load($0) })
            Issue.record("expected an error")
        } catch let error as PipelineError {
            #expect("\(error.localizedDescription)".contains("without"))
        }
    }
}

@Suite("Recipe keys and values")
struct RecipeCheckingTests {
    func failure(_ yaml: String) -> PipelineError? {
        do {
            _ = try recipe(yaml)
            return nil
        } catch {
            return error as? PipelineError
        }
    }

    @Test("a key the schema does not name is an error naming its path, not a silently ignored setting")
    func unknownKeys() {
        let cast = "steps:\n  - pass: cast\n    options: {to: f16}\n"
        #expect(failure(cast + "optoins: {cast: {to: bf16}}\n")?.path == "optoins")
        #expect(failure(cast + "calibration: {file: v.txt, window: 4}\n")?.path == "calibration.window")
        #expect(failure(cast + "evaluate: {text: t.txt, ctxx: 256}\n")?.path == "evaluate.ctxx")
        #expect(failure("steps:\n  - pass: cast\n    option: {to: f16}\n")?.path == "steps[0].option")
        #expect(failure(cast + "outputs:\n  - format: gguf\n    option: {}\n")?.path == "outputs[0].option")
        #expect(failure(cast + "calibration: {file: v.txt, windows: 4}\n") == nil)
    }

    @Test("a misspelled pass option is an error naming the key, not the pass's default")
    func unknownPassOption() throws {
        #expect {
            try Pipeline.plan(
                recipe("steps:\n  - pass: pca-basis\n    options: {rankFracton: 0.5}\n"), for: TinyModel.graph(),
                registry: LatheBuiltins.registry)
        } throws: { error in
            // ... and listing the options the pass has, so the right spelling is in the message.
            (error as? PipelineError)?.errorDescription?.contains(
                "options of pass 'pca-basis': got 'rankFracton', expected one of the pass's options (misspelled? they are: keys, rankFraction, residual, values)"
            ) == true
        }
        // A required option spelled wrong is named as the misspelling, not reported missing.
        #expect {
            try Pipeline.plan(
                recipe("steps:\n  - pass: cast\n    options: {too: f16}\n"), for: TinyModel.graph(),
                registry: LatheBuiltins.registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.contains(
                "options of pass 'cast': got 'too', expected 'to' (a required option; misspelled?)") == true
        }
        // A key given as null is the default, and nested keys are checked too.
        _ = try Pipeline.plan(
            recipe("steps:\n  - pass: cast\n    options: {to: f16, tensors: null}\n"), for: TinyModel.graph(),
            registry: LatheBuiltins.registry)
        #expect {
            try Pipeline.plan(
                recipe(
                    "steps:\n  - pass: quantize-ggml\n    options: {type: q8_0, overrides: [{pattern: x, type: f16, patern: y}]}\n"
                ),
                for: TinyModel.graph(), registry: LatheBuiltins.registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.contains("got 'overrides[0].patern'") == true
        }
    }

    @Test("counts are whole numbers of at least 1 and the seed is not negative; a quoted number is an error")
    func calibrationNumbers() {
        let cast = "steps:\n  - pass: cast\n    options: {to: f16}\n"
        for (setting, path) in [
            ("windows: \"1\"", "calibration.windows"), ("length: 0", "calibration.length"),
            ("windows: 2.5", "calibration.windows"), ("seed: -1", "calibration.seed"),
        ] {
            #expect(failure(cast + "calibration: {file: v.txt, \(setting)}\n")?.path == path, "\(setting)")
        }
        #expect(failure(cast + "evaluate: {text: t.txt, chunks: -3}\n")?.path == "evaluate.chunks")
        let parsed = try? recipe(cast + "calibration: {file: v.txt, windows: 3, length: 64, seed: 7}\n")
        #expect(
            parsed?.calibration?.windows == 3 && parsed?.calibration?.length == 64 && parsed?.calibration?.seed == 7)
    }

    @Test("the quantizers plan on the subspace layout and online transforms the steps before them will record")
    func plannedLayout() throws {
        let (_, plan) = try Pipeline.plan(
            RecipeLibrary.load("resq-w4a4kv4"), for: TinyModel.graph(), registry: LatheBuiltins.registry)
        func notes(_ passID: String) -> [String] { plan.steps.first { $0.passID == passID }?.plan.notes ?? [] }
        // The tiny model: hidden 64 (8 at 8 bit), heads of 16 (2 at 8 bit), as pca-basis records them.
        #expect(notes("quantize-activations").contains("attn_input: A4 with the last 8 at 8 bit per token"))
        #expect(notes("quantize-kv").first == "K and V: 4 bit per (token, head), last 2 of 16 at 8 bit")
        #expect(notes("quantize-kv").contains { $0.hasPrefix("key rotation rounded to INT8") })
        // Without pca-basis, the same quantizers plan uniform 4 bit.
        let (_, plain) = try Pipeline.plan(
            recipe("steps:\n  - pass: quantize-activations\n    options: {bits: 4, highBits: 8}\n"),
            for: TinyModel.graph(), registry: LatheBuiltins.registry)
        #expect(plain.steps[0].plan.notes.contains("attn_input: A4 per token"))
    }

    @Test("a Hadamard rotation over PCA subspaces is refused at plan time when a subspace has no Hadamard order")
    func hadamardSubspaces() throws {
        let text = """
            calibration: {file: v.txt, windows: 1, length: 8}
            steps:
              - pass: untie-embeddings
              - pass: fuse-norms
              - pass: pca-basis
                options: {rankFraction: 0.125}
              - pass: rotate
                options: {kind: hadamard, basis: pca}
            """
        // Hidden 64 splits into 56 + 8, both Hadamard orders; a head of 16 into 14 + 2, and 14 is none.
        #expect {
            try Pipeline.plan(recipe(text), for: TinyModel.graph(), registry: LatheBuiltins.registry)
        } throws: { error in
            (error as? PipelineError)?.errorDescription?.contains("a block of 14 has none") == true
        }
    }
}

import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheTestSupport
import Testing

@testable import LatheCLI

@Suite("Recipes through the CLI")
struct RecipeConversionTests {
    @Test(
        "`--recipe q4_0` equals `--type q4_0` byte for byte, and two runs are identical",
        arguments: ["q4_0", "q8_0", "q5_1"])
    func recipeEqualsType(name: String) throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(
            TinyModel.graph(), to: input, options: WriteOptions())
        let (a, b, c) = (
            work.appendingPathComponent("a.gguf"), work.appendingPathComponent("b.gguf"),
            work.appendingPathComponent("c.gguf")
        )
        let d = work.appendingPathComponent("d.gguf")
        #expect(runLathe(["convert", input.path, "-o", a.path, "--recipe", name]) == nil)
        #expect(runLathe(["convert", input.path, "-o", b.path, "--type", name]) == nil)
        #expect(runLathe(["convert", input.path, "-o", c.path, "--recipe", name]) == nil)
        #expect(runLathe(["convert", input.path, "-o", d.path, "--recipe", name, "--no-manifest"]) == nil)
        #expect(
            try Data(contentsOf: d) == Data(contentsOf: b), "without the manifest, the recipe writes --type's bytes")
        #expect(try Data(contentsOf: a) == Data(contentsOf: c), "two runs of a recipe are byte-identical")
        let graph = try ModelInput.open(a, options: ReadOptions(naming: .gguf))
        #expect(graph["blk.0.attn_q.weight"]?.info.dtype == (try EncodingName.parse(name)))
        let manifest = try JSONValue.parse(try #require(graph.metadata["lathe.manifest"]?.stringValue))
        #expect(manifest["recipe"]?["name"] == .string(name))
        #expect(manifest["recipe"]?["source"] == .string("builtin:\(name)"))
        #expect(manifest["inputs"]?.arrayValue?.first?["sha256"] == .string(try SHA256.file(input.path)))
        #expect(manifest["tensors"]?["model.layers.0.self_attn.q_proj.weight"] == .string(name.uppercased()))
        #expect(
            try ModelComparison(ModelInput.open(a), ModelInput.open(b)).identical,
            "the manifest is provenance, not a difference")
    }

    @Test("--recipe and --type together are refused; a strict recipe's fallback is an error and writes nothing")
    func refusals() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        #expect(
            message(
                runLathe([
                    "convert", input.path, "-o", work.appendingPathComponent("x.gguf").path, "--recipe", "q4_0",
                    "--type", "q8_0",
                ])
            ).contains("drop --type"))
        let error = message(
            runLathe([
                "convert", input.path, "-o", work.appendingPathComponent("x.safetensors").path, "--recipe", "q4_0",
            ]))
        #expect(
            error.contains(
                "builtin:q4_0: outputs: tensor 'model.embed_tokens.weight' would be Q4_0, which safetensors cannot store"
            ))
        #expect(try listing(work) == ["tiny.gguf"])
    }
}

@Suite("Out-of-process passes")
struct ExternalPassRecipeTests {
    @Test(
        "the Python example pass clamps outliers inside a recipe",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)))
    func clampOutliers() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let graph = try TinyModel.graph()
        let input = work.appendingPathComponent("tiny.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: input, options: WriteOptions())
        let script = Fixtures.packageRoot.appendingPathComponent("Examples/plugins/clamp_outliers.py").path
        let recipe = work.appendingPathComponent("clamp.yaml")
        try """
        name: clamp
        description: clamp MLP weights at 1.5 sigma
        steps:
          - pass: external
            options:
              command: [\(Oracle.python.path), \(script)]
              options: {k: 1.5, pattern: mlp}
        outputs:
          - format: safetensors
        """.write(to: recipe, atomically: true, encoding: .utf8)
        let output = work.appendingPathComponent("clamped.safetensors")
        // Without --allow-external the recipe alone never starts the program.
        #expect(
            message(runLathe(["convert", input.path, "-o", output.path, "--recipe", recipe.path])).contains(
                "--allow-external \(Oracle.python.path)"))
        #expect(!FileManager.default.fileExists(atPath: output.path))
        #expect(
            runLathe([
                "convert", input.path, "-o", output.path, "--recipe", recipe.path, "--allow-external",
                Oracle.python.path,
            ]) == nil)
        let result = try ModelInput.open(output)
        for tensor in graph.tensors {
            let before = try TensorCodec.decode(tensor)
            let after = try TensorCodec.decode(try result.tensor(named: tensor.name))
            guard tensor.name.contains("mlp"), tensor.info.shape.rank == 2 else {
                #expect(after == before, "\(tensor.name) is untouched")
                continue
            }
            let mean = before.reduce(0.0) { $0 + Double($1) } / Double(before.count)
            let sigma = (before.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(before.count))
                .squareRoot()
            let limit = Float(1.5 * sigma)
            // Tolerance: numpy computes σ in float64 and clips in float32; allow one ulp of the limit.
            for (x, y) in zip(before, after) {
                #expect(abs(y - max(-limit, min(limit, x))) <= limit.ulp, "\(tensor.name)")
            }
            #expect(before.contains { abs($0) > limit }, "\(tensor.name) had outliers to clamp")
        }
        let plan = try Pipeline.plan(RecipeLibrary.load(recipe.path), for: graph, registry: LatheBuiltins.registry).plan
        #expect(plan.steps[0].plan.changedTensors.count == 6)
    }

}

@Suite("In-process plugins")
struct InProcessPluginTests {
    /// Runs a program found on PATH.
    func run(_ arguments: [String]) throws -> String {
        try Oracle.runProcess(URL(fileURLWithPath: "/usr/bin/env"), arguments)
    }

    @Test("a separate package adds a pass to the registry and runs it in a recipe")
    func examplePackage() throws {
        let package = Fixtures.packageRoot.appendingPathComponent("Examples/InProcessPlugin")
        // SwiftPM keeps a path dependency's build plan: targets or dependencies Lathe gained since the
        // example was last built would be missing from it, so the plan is made afresh.
        try? FileManager.default.removeItem(at: package.appendingPathComponent(".build/debug.yaml"))
        _ = try run(["swift", "build", "--package-path", package.path])
        let binary = try run(["swift", "build", "--package-path", package.path, "--show-bin-path"]).trimmingCharacters(
            in: .whitespacesAndNewlines)
        let tool = URL(fileURLWithPath: binary).appendingPathComponent("lathe-plus").path
        #expect(try run([tool, "plugins"]).contains("scale-norms"))

        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let graph = try TinyModel.graph()
        let input = work.appendingPathComponent("tiny.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: input, options: WriteOptions())
        let recipe = work.appendingPathComponent("scale.yaml")
        try "name: scale\ndescription: double the norms\nsteps:\n  - pass: scale-norms\n    options: {factor: 2}\n"
            .write(to: recipe, atomically: true, encoding: .utf8)
        let output = work.appendingPathComponent("scaled.safetensors")
        _ = try run([tool, "convert", input.path, "-o", output.path, "--recipe", recipe.path])
        let result = try ModelInput.open(output)
        for tensor in graph.tensors {
            let before = try TensorCodec.decode(tensor)
            let after = try TensorCodec.decode(try result.tensor(named: tensor.name))
            #expect(after == (tensor.name.hasSuffix("norm.weight") ? before.map { $0 * 2 } : before), "\(tensor.name)")
        }
        // The stock CLI does not know the plugin's pass.
        #expect(message(runLathe(["plan", recipe.path, input.path])).contains("unknown pass 'scale-norms'"))
    }
}

@Suite("Recipes with calibration and evaluation")
struct CalibratedRecipeTests {
    @Test("calibration is collected or reused, evaluation runs, and the manifest records both")
    func calibrateAndEvaluate() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        let text = work.appendingPathComponent("text.txt")
        try String(repeating: "the quick brown fox jumps over the lazy dog and runs away ", count: 20).write(
            to: text, atomically: true, encoding: .utf8)
        let evaluation = work.appendingPathComponent("evaluation.txt")
        try String(repeating: "a lazy dog sleeps while the quick brown fox runs over the hill ", count: 20).write(
            to: evaluation, atomically: true, encoding: .utf8)
        let stats = work.appendingPathComponent("stats.safetensors")
        let elsewhere = work.appendingPathComponent("elsewhere.safetensors")
        for (statistics, source) in [(stats, text), (elsewhere, evaluation)] {
            #expect(
                runLathe([
                    "calibrate", input.path, "--text", source.path, "--windows", "2", "--length", "16", "--seed", "7",
                    "-o", statistics.path,
                ]) == nil)
        }
        func recipe(_ name: String, evaluating: URL, extra: String) throws -> URL {
            let recipe = work.appendingPathComponent("\(name).yaml")
            try """
            name: \(name)
            description: test
            calibration:
              file: \(text.path)
              windows: 2
              length: 16\(extra)
            evaluate:
              text: \(evaluating.path)
              ctx: 16
              chunks: 2
            steps:
              - pass: quantize-ggml
                options: {type: q8_0}
            """.write(to: recipe, atomically: true, encoding: .utf8)
            return recipe
        }
        // Statistics measured on another text than calibration.file, and calibrating on the text the
        // recipe evaluates on, are refused: the manifest would misstate what the model was fitted to.
        let refusedOutput = work.appendingPathComponent("refused.gguf")
        let mismatched = message(
            runLathe([
                "convert", input.path, "-o", refusedOutput.path, "--recipe",
                try recipe("mismatch", evaluating: evaluation, extra: "\n  statistics: \(elsewhere.path)").path,
            ]))
        #expect(
            mismatched.contains("lathe.calibration.text_sha256") && mismatched.contains("collected on evaluation.txt"),
            "\(mismatched)")
        let sameText = message(
            runLathe([
                "convert", input.path, "-o", refusedOutput.path, "--recipe",
                try recipe("same", evaluating: text, extra: "").path,
            ]))
        #expect(sameText.contains("calibration.file: text.txt is also the evaluation text"), "\(sameText)")
        #expect(!FileManager.default.fileExists(atPath: refusedOutput.path))
        for (name, extra) in [("collect", ""), ("reuse", "\n  statistics: \(stats.path)")] {
            let recipe = try recipe(name, evaluating: evaluation, extra: extra)
            let output = work.appendingPathComponent("\(name).gguf")
            let error = runLathe(["convert", input.path, "-o", output.path, "--recipe", recipe.path])
            #expect(error == nil, "\(message(error))")
            let manifest = try JSONValue.parse(
                try #require(ModelInput.open(output).metadata["lathe.manifest"]?.stringValue))
            #expect(manifest["calibration_text"]?["sha256"] == .string(try SHA256.file(text.path)))
            #expect(
                manifest["calibration_statistics"]?["sha256"]
                    == (name == "reuse" ? .string(try SHA256.file(stats.path)) : nil))
            // A reused statistics file's windows were drawn with its own seed, not the recipe's (0).
            #expect(manifest["seed"] == .number(name == "reuse" ? "7" : "0"))
            let agreement = try #require(manifest["verification"]?["top1_agreement"]?.doubleValue)
            #expect(agreement > 0.5 && agreement <= 1, "Q8_0 keeps most top-1 choices")
            #expect(manifest["verification"]?["chunks"] == .int(2))
        }
    }
}

@Suite("Resumable recipe runs")
struct ResumeTests {
    @Test("resuming after an interruption gives the uninterrupted bytes, and skips only the finished steps")
    func resume() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        // A plugin that only counts how often it is asked to plan (once when the run is planned, once
        // more when its step is applied).
        let counter = work.appendingPathComponent("calls.txt")
        let plugin = work.appendingPathComponent("count.py")
        try """
        import json, sys
        json.load(sys.stdin)
        open(\(String(reflecting: counter.path)), "a").write("call\\n")
        json.dump({"changes": []}, sys.stdout)
        """.write(to: plugin, atomically: true, encoding: .utf8)
        func recipe(_ type: String) throws -> URL {
            let url = work.appendingPathComponent("recipe-\(type).yaml")
            try """
            name: resumable
            description: test
            steps:
              - pass: external
                options: {command: [python3, \(plugin.path)]}
              - pass: quantize-ggml
                options: {type: \(type)}
            """.write(to: url, atomically: true, encoding: .utf8)
            return url
        }
        func calls() throws -> Int { try String(contentsOf: counter, encoding: .utf8).split(separator: "\n").count }
        let checkpoints = work.appendingPathComponent("checkpoints")
        let allow = ["--allow-external", "python3"]
        let straight = work.appendingPathComponent("straight.gguf")
        let (q8, q5) = (try recipe("q8_0").path, try recipe("q5_0").path)
        #expect(
            runLathe(
                ["convert", input.path, "-o", straight.path, "--recipe", q8, "--work-dir", checkpoints.path] + allow)
                == nil)
        #expect(try calls() == 2)

        // Interrupted during step 2: its checkpoint never got its marker.
        for marker in try listing(checkpoints) where marker.hasPrefix("step-2-") {
            try FileManager.default.removeItem(at: checkpoints.appendingPathComponent(marker))
        }
        let resumed = work.appendingPathComponent("resumed.gguf")
        #expect(
            runLathe(
                [
                    "convert", input.path, "-o", resumed.path, "--recipe", q8, "--work-dir", checkpoints.path,
                    "--resume",
                ] + allow) == nil)
        #expect(try Data(contentsOf: resumed) == Data(contentsOf: straight))
        #expect(try calls() == 3, "step 1 was restored, not run again")

        // Changing step 2 keeps step 1's checkpoint valid and reruns only step 2.
        let changed = work.appendingPathComponent("changed.gguf")
        let fresh = work.appendingPathComponent("fresh.gguf")
        #expect(
            runLathe(
                [
                    "convert", input.path, "-o", changed.path, "--recipe", q5, "--work-dir", checkpoints.path,
                    "--resume",
                ] + allow) == nil)
        #expect(try calls() == 4)
        #expect(runLathe(["convert", input.path, "-o", fresh.path, "--recipe", q5] + allow) == nil)
        #expect(try Data(contentsOf: changed) == Data(contentsOf: fresh))

        // A damaged checkpoint is refused, not resumed into a different output.
        for name in try listing(checkpoints) where name.hasPrefix("step-2-") && name.hasSuffix(".gguf") {
            var bytes = try Data(contentsOf: checkpoints.appendingPathComponent(name))
            bytes[bytes.count - 5] ^= 0x10
            try bytes.write(to: checkpoints.appendingPathComponent(name))
        }
        let damaged = message(
            runLathe(
                [
                    "convert", input.path, "-o", work.appendingPathComponent("damaged.gguf").path, "--recipe", q8,
                    "--work-dir", checkpoints.path, "--resume",
                ] + allow))
        #expect(damaged.contains("checkpoint is damaged"), "\(damaged)")
        // So is a truncated marker, named, with what to do.
        for name in try listing(checkpoints) where name.hasPrefix("step-2-") && name.hasSuffix(".json") {
            let marker = checkpoints.appendingPathComponent(name)
            try Data(contentsOf: marker).prefix(40).write(to: marker)
        }
        let truncated = message(
            runLathe(
                [
                    "convert", input.path, "-o", work.appendingPathComponent("truncated.gguf").path, "--recipe", q8,
                    "--work-dir", checkpoints.path, "--resume",
                ] + allow))
        #expect(
            truncated.contains(".json: checkpoint is damaged") && truncated.contains("delete it"), "\(truncated)")
    }
}

@Suite("Recipe inputs and outputs")
struct RecipeOutputsTests {
    @Test("a recipe names its input for plan, and every output is written beside the first")
    func inputAndOutputs() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        let recipe = work.appendingPathComponent("two.yaml")
        try """
        name: two
        description: F16 matrices in GGUF and safetensors
        input: \(input.path)
        steps:
          - pass: cast
            options: {to: f16, minRank: 2}
        outputs:
          - format: gguf
          - format: safetensors
        """.write(to: recipe, atomically: true, encoding: .utf8)
        #expect(runLathe(["plan", recipe.path]) == nil)
        let output = work.appendingPathComponent("out.gguf")
        #expect(runLathe(["convert", input.path, "-o", output.path, "--recipe", recipe.path]) == nil)
        let gguf = try ModelInput.open(output)
        let st = try ModelInput.open(work.appendingPathComponent("out.safetensors"))
        #expect(gguf["model.layers.0.mlp.up_proj.weight"]?.info.dtype == .f16)
        #expect(try ModelComparison(gguf, st).identical)
    }
}

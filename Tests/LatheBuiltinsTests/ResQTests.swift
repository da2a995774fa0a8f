import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheRuntime
import LatheTestSupport
import LinearAlgebra
import Testing

@testable import LatheCLI

/// Calibration on fixed token windows, through the runtime (what the command line provides).
struct TokenCalibrator: Calibrator {
    var tokens: [Int]
    var windows = 4
    var length = 32

    func statistics(of graph: ModelGraph, diagnostics: Diagnostics) throws -> CalibrationMoments {
        let weights = try LlamaWeights(graph)
        let statistics = CalibrationStatistics(headDim: weights.config.headDim)
        try statistics.collect(
            LlamaSession(weights: weights, maxContext: length), tokens: tokens, windows: windows, length: length,
            seed: 3)
        return CalibrationMoments(statistics.moments)
    }

    func layerwise(_ graph: ModelGraph, diagnostics: Diagnostics) throws -> any LayerwiseCalibration {
        try LayerWalk(graph, tokens: tokens, windows: windows, length: length, seed: 3, threads: 1)
    }
}

/// The passes of `steps` (pass id, options JSON) run on `graph`; returns the graph and the context.
func runPasses(
    _ steps: [(String, String)], on graph: ModelGraph, calibrator: (any Calibrator)? = nil
) throws -> (ModelGraph, PassContext) {
    var graph = graph
    var context = PassContext(calibrator: calibrator)
    for (id, options) in steps {
        let pass = try LatheBuiltins.registry.pass(id, options: Data(options.utf8))
        try pass.apply(&graph, context: &context)
    }
    return (graph, context)
}

/// Logits of the whole sequence (rows × vocab).
func logits(_ graph: ModelGraph, _ tokens: [Int]) throws -> [Float] {
    let session = LlamaSession(weights: try LlamaWeights(graph), maxContext: tokens.count)
    return session.logits(try session.forward(tokens), rows: 0..<tokens.count)
}

/// max |a − b| / max |b|: the error relative to the logits' scale (elementwise ratios blow up near 0).
/// NaN when either side holds a NaN, so that a `scaledError(…) < tolerance` check fails on it.
func scaledError(_ a: [Float], _ b: [Float]) -> Float {
    maxDifference(a, b) / maxMagnitude(b)
}

let transformSteps: [(label: String, steps: [(String, String)])] = [
    ("untie", [("untie-embeddings", "{}")]),
    ("norm fusion", [("untie-embeddings", "{}"), ("fuse-norms", "{}")]),
    ("U_A", prepared + [("rotate", #"{"values": false, "keys": false}"#)]),
    ("U_B", prepared + [("rotate", #"{"residual": false, "keys": false}"#)]),
    ("U_C", prepared + [("rotate", #"{"residual": false, "values": false}"#)]),
    ("U_D", prepared + [("online-hadamard", "{}")]),
    ("all of them", prepared + [("rotate", "{}"), ("online-hadamard", "{}")]),
    (
        "QuaRot-style Hadamard",
        [
            ("untie-embeddings", "{}"), ("fuse-norms", "{}"),
            ("rotate", #"{"kind": "randomized-hadamard", "basis": "none"}"#), ("online-hadamard", "{}"),
        ]
    ),
]

let prepared: [(String, String)] = [
    ("untie-embeddings", "{}"), ("fuse-norms", "{}"), ("calibrate", "{}"), ("pca-basis", "{}"),
]

@Suite("ResQ passes on a tiny model")
struct ResQTinyTests {
    let graph: ModelGraph
    let tokens: [Int]
    let calibrator: TokenCalibrator

    init() throws {
        graph = try TinyModel.graph(TinyModel.config(layers: 2, hidden: 64, heads: 4, kvHeads: 2, ffn: 96, vocab: 96))
        tokens = (0..<40).map { ($0 * 29 + 5) % 96 }
        calibrator = TokenCalibrator(tokens: (0..<400).map { ($0 * 37 + 11) % 96 })
    }

    @Test(
        "with every quantizer off, each fused transform leaves the logits unchanged (max error < 1e-4 of the logit scale)",
        arguments: transformSteps.indices)
    func transformsPreserveLogits(_ index: Int) throws {
        let (label, steps) = transformSteps[index]
        let reference = try logits(graph, tokens)
        let (transformed, _) = try runPasses(steps, on: graph, calibrator: calibrator)
        let error = scaledError(try logits(transformed, tokens), reference)
        #expect(error < 1e-4, "\(label): \(error)")
        if label != "untie" { #expect(transformed["lm_head.weight"] != nil) }
    }

    @Test("a residual rotation over norms that are not folded is refused, naming the norm and the missing step")
    func rotationNeedsFoldedNorms() throws {
        #expect {
            try runPasses(
                [("untie-embeddings", "{}"), ("rotate", #"{"basis": "none", "keys": false}"#)], on: graph)
        } throws: { error in
            let text = (error as? LatheError)?.errorDescription ?? ""
            return text.contains("model.layers.0.input_layernorm.weight")
                && text.contains("add fuse-norms before rotate")
        }
        // U_B alone does not pass through a norm, so it needs no folding.
        _ = try runPasses([("rotate", #"{"basis": "none", "residual": false, "keys": false}"#)], on: graph)
    }

    @Test("PCA bases are orthonormal, eigenvalues ascending, and the high subspace holds the largest ones (1e-9)")
    func pcaBases() throws {
        let (_, context) = try runPasses(prepared, on: graph, calibrator: calibrator)
        let bases = try #require(context[SubspaceBasesArtifact.self])
        let statistics = try #require(context[CalibrationArtifact.self])
        let n = 64
        let u = try #require(bases.residual)
        let spectrum = try #require(bases.spectra["residual"])
        #expect(bases.layout.hiddenHigh == 8 && bases.layout.headHigh == 2)
        // UᵀU = I.
        for i in 0..<n {
            for j in 0..<n {
                let dot = (0..<n).reduce(0.0) { $0 + u[$1 * n + i] * u[$1 * n + j] }
                #expect(abs(dot - (i == j ? 1 : 0)) < 1e-9)
            }
        }
        #expect(zip(spectrum, spectrum.dropFirst()).allSatisfy { $0 <= $1 })
        // Each column is an eigenvector of the pooled moment, with its eigenvalue: C·u = λu.
        var c = [Double](repeating: 0, count: n * n)
        for layer in 0..<2 {
            for site in ["attn_input", "mlp_input"] {
                let m = try #require(statistics["\(site).\(layer)"]).meanSecondMoment
                for i in c.indices { c[i] += m[i] / 4 }
            }
        }
        // The solver reads the upper triangle; Float32 batch products leave the two halves 1e-7 apart.
        for i in 0..<n {
            for j in 0..<i { c[i * n + j] = c[j * n + i] }
        }
        for column in [0, n - 1] {
            for row in 0..<n {
                let cu = (0..<n).reduce(0.0) { $0 + c[row * n + $1] * u[$1 * n + column] }
                #expect(abs(cu - spectrum[column] * u[row * n + column]) < 1e-9 * spectrum[n - 1])
            }
        }
        // The energy the tail captures equals the sum of the largest eigenvalues, the most any
        // 8-dimensional subspace can hold (Ky Fan); a coordinate subspace holds less.
        let tail = spectrum.suffix(8).reduce(0, +)
        let diagonal = (0..<n).map { c[$0 * n + $0] }.sorted()
        #expect(tail >= diagonal.suffix(8).reduce(0, +))
        let head = try #require(bases.values?[0][0])
        #expect(head.count == 16 * 16)
    }

    @Test("the same seed gives the same bytes; another seed gives other bytes")
    func determinism() throws {
        let steps: [(String, String)] =
            prepared + [
                ("rotate", #"{"seed": 11}"#), ("online-hadamard", "{}"), ("quantize-weights", "{}"),
                ("quantize-activations", "{}"), ("quantize-kv", "{}"),
            ]
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        func write(_ steps: [(String, String)], _ name: String) throws -> Data {
            let (graph, _) = try runPasses(steps, on: graph, calibrator: calibrator)
            let url = work.appendingPathComponent(name)
            _ = try GGUFWriter().write(graph, to: url, options: WriteOptions())
            return try Data(contentsOf: url)
        }
        let first = try write(steps, "a.gguf")
        #expect(try write(steps, "b.gguf") == first)
        var reseeded = steps
        reseeded[4] = ("rotate", #"{"seed": 12}"#)
        #expect(try write(reseeded, "c.gguf") != first)
    }

    @Test("the runtime executes the recorded quantization: 4-bit changes the logits, 16-bit barely (1e-3)")
    func runtimeExecutesScheme() throws {
        let base = prepared + [("rotate", "{}"), ("online-hadamard", "{}")]
        let (fp, _) = try runPasses(base, on: graph, calibrator: calibrator)
        let reference = try logits(fp, tokens)
        for (bits, bound) in [(16, Float(1e-3)), (4, Float.infinity)] {
            let options = #"{"bits": \#(bits), "highBits": 16}"#
            let (quantized, _) = try runPasses(
                [
                    ("quantize-activations", options),
                    ("quantize-kv", #"{"bits": \#(bits), "highBits": 16, "rotationBits": 0}"#),
                ], on: fp)
            let scheme = try QuantizationScheme(metadata: quantized.metadata)
            #expect(scheme.activations.count == 4 && scheme.keys?.bits == bits)
            let error = scaledError(try logits(quantized, tokens), reference)
            if bits == 16 { #expect(error < bound) } else { #expect(error > 1e-3) }
        }
    }

    @Test(
        "sequential GPTQ: walking the rotated model layer by layer gives the statistics the rotations kept in step (1e-4 of their scale); later layers then see quantized inputs"
    )
    func sequentialGPTQ() throws {
        let base = prepared + [("rotate", "{}"), ("online-hadamard", "{}")]
        let (rotated, context) = try runPasses(base, on: graph, calibrator: calibrator)
        let kept = try #require(context[CalibrationArtifact.self])
        let fresh = try calibrator.layerwise(rotated, diagnostics: .silent).statistics(ofLayer: 0, in: rotated)
        for site in ["attn_input", "mlp_input", "o_proj_input", "down_proj_input"] {
            let a = try #require(fresh["\(site).0"])
            let b = try #require(kept["\(site).0"])
            let scale = maxMagnitude(b.secondMoment)
            let worst = maxDifference(a.secondMoment, b.secondMoment)
            #expect(a.count == b.count && worst <= 1e-4 * scale, "\(site): \(worst / scale)")
        }
        func quantized(_ options: String) throws -> ModelGraph {
            var (model, ctx) = (rotated, context)
            try LatheBuiltins.registry.pass("quantize-weights", options: Data(options.utf8)).apply(
                &model, context: &ctx)
            return model
        }
        let (sequential, plain) = (try quantized(#"{"sequential": true}"#), try quantized("{}"))
        let name = "model.layers.1.mlp.down_proj.weight"
        #expect(try sequential.floats(name) != plain.floats(name), "layer 1 was quantized against other inputs")
    }

    @Test("GPTQ leaves a smaller output error than RTN on the calibration inputs of every layer")
    func gptqBeatsRTN() throws {
        let base = prepared + [("rotate", "{}"), ("online-hadamard", "{}")]
        let (fp, context) = try runPasses(base, on: graph, calibrator: calibrator)
        let statistics = try #require(context[CalibrationArtifact.self])
        var errors: [String: Double] = [:]
        for method in ["rtn", "gptq"] {
            var ctx = context
            var quantized = fp
            let pass = try LatheBuiltins.registry.pass(
                "quantize-weights", options: Data(#"{"method": "\#(method)", "bits": 3}"#.utf8))
            try pass.apply(&quantized, context: &ctx)
            // E‖x(W − Ŵ)ᵀ‖² = tr((W − Ŵ) H (W − Ŵ)ᵀ) with H the inputs' second moment.
            var total = 0.0
            for layer in 0..<2 {
                for (kind, site) in [("self_attn.q_proj", "attn_input"), ("mlp.down_proj", "down_proj_input")] {
                    let name = "model.layers.\(layer).\(kind).weight"
                    let (rows, columns) = try fp.matrixShape(name)
                    let w = try fp.floats(name)
                    let q = try quantized.floats(name)
                    let h = try #require(statistics["\(site).\(layer)"]).meanSecondMoment
                    for r in 0..<rows {
                        let d = (0..<columns).map { Double(w[r * columns + $0] - q[r * columns + $0]) }
                        for i in 0..<columns {
                            for j in 0..<columns { total += d[i] * h[i * columns + j] * d[j] }
                        }
                    }
                }
            }
            errors[method] = total
        }
        let rtn = try #require(errors["rtn"])
        let gptq = try #require(errors["gptq"])
        #expect(gptq < rtn, "GPTQ \(gptq) vs RTN \(rtn)")
    }
}

@Suite(
    "ResQ passes on SmolLM2",
    .enabled(if: Fixtures.smolLM2IsAvailable, Comment(rawValue: Fixtures.smolLM2SkipReason)))
struct ResQSmolLM2Tests {
    @Test("untying, norm fusion, U_A, U_B, U_C and U_D together leave SmolLM2's logits unchanged (< 1e-4 of scale)")
    func fusedTransformsPreserveLogits() throws {
        let graph = try GGUFReader().read(Fixtures.smolLM2, options: ReadOptions())
        let tokens = [1, 504, 3458, 282, 4649, 314, 7042, 30, 378, 2286, 1071, 281, 253, 1345, 28, 357]
        let reference = try logits(graph, tokens)
        let calibrator = TokenCalibrator(tokens: (0..<2000).map { ($0 * 7919 + 13) % 49152 }, windows: 2, length: 64)
        let (transformed, _) = try runPasses(
            prepared + [("rotate", "{}"), ("online-hadamard", "{}")], on: graph, calibrator: calibrator)
        let error = scaledError(try logits(transformed, tokens), reference)
        #expect(error < 1e-4, "\(error)")
    }
}

@Suite("Verifying several candidates")
struct MultiCandidateVerifyTests {
    @Test(
        "several candidates in one pass get exactly the numbers of their own runs",
        arguments: [PerplexityProtocol.llama, .all])
    func matchesSeparateRuns(_ scoring: PerplexityProtocol) throws {
        let graph = try TinyModel.graph()
        let calibrator = TokenCalibrator(tokens: (0..<400).map { ($0 * 37 + 11) % 96 })
        let (fp, _) = try runPasses(prepared + [("rotate", "{}")], on: graph, calibrator: calibrator)
        let (a, _) = try runPasses([("quantize-activations", "{}")], on: fp)
        let (b, _) = try runPasses([("quantize-kv", #"{"bits": 3}"#)], on: fp)
        let tokens = (0..<120).map { ($0 * 13 + 1) % 96 }
        func session(_ g: ModelGraph) throws -> LlamaSession {
            LlamaSession(weights: try LlamaWeights(g), maxContext: 32)
        }
        let together = try Verifier.compare(
            base: session(graph), candidates: [session(a), session(b)], tokens: tokens, context: 32, maxChunks: nil,
            protocol: scoring)
        for (index, candidate) in [a, b].enumerated() {
            let alone = try Verifier.compare(
                base: session(graph), candidate: session(candidate), tokens: tokens, context: 32, maxChunks: nil,
                protocol: scoring)
            #expect(together[index].kl.mean == alone.kl.mean)
            #expect(together[index].candidatePerplexity == alone.candidatePerplexity)
            #expect(together[index].topOneAgreement == alone.topOneAgreement)
            #expect(together[index].layerErrors == alone.layerErrors)
        }
        #expect(together[0].kl.mean > 0 && together[0].kl.mean != together[1].kl.mean)
    }
}

@Suite("Resuming recipes with artifacts")
struct ResumeArtifactTests {
    @Test("a resumed run goes back to the step that made an artifact a remaining step needs")
    func restartPoint() {
        let steps = [
            PassPlan(produces: ["calibration"]), PassPlan(requires: ["calibration"], produces: ["bases"]),
            PassPlan(requires: ["bases"]), PassPlan(), PassPlan(requires: ["calibration"]), PassPlan(),
        ]
        #expect(RecipeRunner.restartPoint(after: 3, steps) == 0)  // step 4 needs the calibration
        #expect(RecipeRunner.restartPoint(after: 1, steps) == 0)  // step 2 needs the bases, which need it too
        #expect(RecipeRunner.restartPoint(after: 4, steps) == 5)  // nothing left needs an artifact
        #expect(RecipeRunner.restartPoint(after: 5, steps) == 6)
    }
}

@Suite("Verifying rotated models")
struct RotatedVerifyTests {
    @Test("per-layer errors are measured in the original basis: a rotated FP model is 1e-4 close at every layer")
    func originalBasis() throws {
        let graph = try TinyModel.graph()
        let calibrator = TokenCalibrator(tokens: (0..<400).map { ($0 * 37 + 11) % 96 })
        let (rotated, _) = try runPasses(
            prepared + [("rotate", "{}"), ("online-hadamard", "{}")], on: graph, calibrator: calibrator)
        #expect(rotated[OnlineTransforms.residualRotationTensor] != nil)
        let tokens = (0..<96).map { ($0 * 13 + 1) % 96 }
        func session(_ g: ModelGraph) throws -> LlamaSession {
            LlamaSession(weights: try LlamaWeights(g), maxContext: 32)
        }
        let result = try Verifier.compare(
            base: session(graph), candidate: session(rotated), tokens: tokens, context: 32, maxChunks: nil)
        #expect(result.layerErrors.allSatisfy { $0 < 1e-4 }, "\(result.layerErrors)")
        #expect(result.kl.max < 1e-6 && result.topOneAgreement == 1)
    }
}

@Suite("convert --calibration-text")
struct CalibrationTextOptionTests {
    @Test("it is refused without a calibrating recipe, and a missing text names the file and the option")
    func option() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(try TinyModel.graph(), to: model, options: WriteOptions())
        let out = work.appendingPathComponent("out.safetensors").path
        let refused = message(
            runLathe(["convert", model.path, "-o", out, "--recipe", "q8_0", "--calibration-text", "x"]))
        #expect(refused.contains("needs a --recipe with a calibration section"))
        let missing = message(
            runLathe([
                "convert", model.path, "-o", out, "--recipe", "resq-w4a4kv4", "--calibration-text",
                work.appendingPathComponent("absent.txt").path,
            ]))
        #expect(missing.contains("absent.txt") && missing.contains("--calibration-text"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}

@Suite("Recipe calibration sources")
struct CalibrationSourceTests {
    @Test("a statistics file next to a calibrate step is refused, naming the field, and nothing is written")
    func statisticsWithCalibrateStep() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let model = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(try TinyModel.graph(), to: model, options: WriteOptions())
        let recipe = work.appendingPathComponent("r.yaml")
        try "include: resq-w4a4kv4\ncalibration:\n  file: text.txt\n  statistics: stats.safetensors\n".write(
            to: recipe, atomically: true, encoding: .utf8)
        let out = work.appendingPathComponent("out.safetensors").path
        let error = message(runLathe(["convert", model.path, "-o", out, "--recipe", recipe.path]))
        #expect(error.contains("calibration.statistics") && error.contains("calibrate step"))
        #expect(!FileManager.default.fileExists(atPath: out))
    }
}

@Suite("Online transform records")
struct OnlineRecordTests {
    @Test("a down-projection Hadamard the runtime cannot build is refused at load, naming the key")
    func unsupportedHadamard() throws {
        var graph = try TinyModel.graph(TinyModel.config(ffn: 136))  // 136 = 17 · 8: no Hadamard matrix
        try OnlineTransforms(downProjectionHadamard: 136).store(in: &graph.metadata)
        do {
            _ = try LlamaWeights(graph)
            Issue.record("expected an error")
        } catch let error as LatheError {
            #expect(error.errorDescription?.contains("downProjectionHadamard") == true)
        }
    }
}

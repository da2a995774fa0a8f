import ArgumentParser
import Compression
import FormatGGUF
import Foundation
import LatheBuiltins
import LatheCore
import LatheRuntime
import LatheTestSupport
import Testing

@testable import LatheCLI

/// `lathe diff` and `lathe inspect` on converted models.
@Suite("diff and inspect")
struct DiffInspectTests {
    @Test("diff reports a changed tensor with its error, and identical models as identical")
    func diff() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let graph = try TinyModel.graph()
        let a = work.appendingPathComponent("a.gguf")
        let b = work.appendingPathComponent("b.safetensors")
        let c = work.appendingPathComponent("c.gguf")
        _ = try GGUFWriter().write(graph, to: a, options: WriteOptions())
        _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: b, options: WriteOptions())
        var changed = graph
        try changed.replace(
            TensorCodec.convert(graph.tensor(named: "model.layers.0.mlp.up_proj.weight"), to: .quantized(.ggml(.q8_0))))
        changed.metadata["general.name"] = .string("changed")
        _ = try GGUFWriter().write(changed, to: c, options: WriteOptions())
        #expect(runLathe(["diff", a.path, b.path]) == nil)
        let same = try ModelComparison(ModelInput.open(a), ModelInput.open(b))
        #expect(same.identical)
        let different = try ModelComparison(ModelInput.open(a), ModelInput.open(c))
        #expect(!different.identical)
        #expect(different.changedKeys == ["general.name"])
        #expect(
            different.addedKeys.isEmpty, "encoding bookkeeping (general.quantization_version) is not a model difference"
        )
        let up = try #require(different.tensors.first { $0.name == "model.layers.0.mlp.up_proj.weight" })
        // Q8_0 keeps about 8 bits: relative error well under 1 %, but not zero.
        #expect(up.relativeError > 0 && up.relativeError < 0.01)
        #expect((runLathe(["diff", a.path, c.path]) as? ExitCode) == ExitCode(1))
        // A NaN where the first model has a number is the worst difference, not "values match".
        var poisoned = graph
        var norm = try graph.floats("model.layers.1.input_layernorm.weight")
        norm[0] = .nan
        try poisoned.setFloats("model.layers.1.input_layernorm.weight", norm)
        let nan = try ModelComparison(graph, poisoned)
        #expect(!nan.identical)
        let hit = try #require(nan.tensors.first { $0.name == "model.layers.1.input_layernorm.weight" })
        #expect(hit.relativeError.isNaN && hit.maxAbsDifference.isNaN)
        #expect(
            nan.text(all: false).hasSuffix("different: worst tensor model.layers.1.input_layernorm.weight nan"),
            "\(nan.text(all: false))")
        // Models that cannot be compared are trouble (2), as for diff(1), not a difference.
        #expect(
            (runLathe(["diff", a.path, work.appendingPathComponent("missing.gguf").path]) as? ExitCode) == ExitCode(2))
    }

    @Test("inspect --json describes the model")
    func inspectJSON() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let url = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: url, options: WriteOptions())
        let summary = try ModelSummary(ModelInput.open(url, options: ReadOptions(naming: .gguf)))
        let json = summary.json(tensors: true, metadata: nil)
        #expect(json["format"] == .string("gguf"))
        #expect(json["tensor_count"] == .int(20))
        #expect(json["config"]?["hidden_size"] == .int(64))
        #expect(json["tensors"]?.arrayValue?.first?["name"] == .string("token_embd.weight"))
        #expect(summary.text(tensors: false, metadata: nil).contains("2 layers, hidden 64, 4 heads × 16 (2 KV)"))
        #expect(json["manifest"] == nil, "no recipe, no manifest")
        // A recipe output's manifest comes as the object it is.
        let quantized = work.appendingPathComponent("q8.gguf")
        #expect(runLathe(["convert", url.path, "-o", quantized.path, "--recipe", "q8_0"]) == nil)
        let manifest = try ModelSummary(ModelInput.open(quantized)).json(tensors: false, metadata: nil)["manifest"]
        #expect(manifest?["recipe"]?["name"] == .string("q8_0"), "\(manifest?.serialized() ?? "none")")
    }
}

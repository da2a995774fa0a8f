import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline
import LatheTestSupport
import Testing

@testable import LatheCLI

/// A tiny model of `config` after `steps`, written as safetensors at `url`.
@discardableResult
func writeTiny(
    _ steps: [(String, String)] = [], config: LlamaConfig = TinyModel.config(), to url: URL
) throws -> ModelGraph {
    let (graph, _) = try runPasses(steps, on: try TinyModel.graph(config))
    _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: url, options: WriteOptions())
    return graph
}

@Suite("lpack export and GGUF for llama.cpp")
struct PackedExportTests {
    static let quantized = [
        ("quantize-weights", #"{"method": "rtn"}"#), ("quantize-activations", "{}"), ("quantize-kv", "{}"),
    ]

    @Test("convert to .lpack packs the quantized matrices losslessly; check verifies it and names a damaged tensor")
    func packAndCheck() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("w4a4.safetensors")
        let original = try writeTiny(Self.quantized, to: source)
        let packedURL = work.appendingPathComponent("w4a4.lpack")
        #expect(runLathe(["convert", source.path, "-o", packedURL.path]) == nil)
        let packed = try ModelInput.open(packedURL)
        for tensor in packed.tensors where tensor.name.hasSuffix("_proj.weight") {
            guard case .quantized(.packed) = tensor.info.dtype else {
                Issue.record("\(tensor.name) stayed \(tensor.info.dtype)")
                continue
            }
            #expect(try TensorCodec.decode(tensor) == TensorCodec.decode(original.tensor(named: tensor.name)))
        }
        #expect(try QuantizationScheme(metadata: packed.metadata) == QuantizationScheme(metadata: original.metadata))
        #expect(runLathe(["check", packedURL.path, "--values"]) == nil)

        // One flipped byte inside the last tensor's member (members are padded before, not after, so
        // the file ends with it).
        var bytes = try [UInt8](Data(contentsOf: packedURL))
        let last = try #require(packed.tensors.last)
        bytes[bytes.count - 2] ^= 0x10
        let damaged = work.appendingPathComponent("damaged.lpack")
        try Data(bytes).write(to: damaged)
        let error = message(runLathe(["check", damaged.path]))
        #expect(error.contains("checksum mismatch") && error.contains(last.name), "\(error)")
    }

    @Test("plan estimates each output as written: lpack's packed matrices, a safetensors fallback at F32")
    func planEstimatesEachOutput() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("w4a4.safetensors")
        let original = try writeTiny(Self.quantized, to: source)
        let export = try Recipe.parse(
            "name: export\noutputs:\n  - format: safetensors\n  - format: lpack\n", source: "export.yaml"
        ) { try RecipeLibrary.load($0) }
        let (_, plan) = try Pipeline.plan(export, for: ModelInput.open(source), registry: LatheBuiltins.registry)
        #expect(plan.outputs.map(\.format) == ["safetensors", "lpack"])
        // Exact: the tensor bytes each writer stores (the lpack estimate used to be the F32 size, 3× off).
        #expect(plan.outputs[0].bytes == (try original.totals().bytes))
        let packedURL = work.appendingPathComponent("w4a4.lpack")
        #expect(runLathe(["convert", source.path, "-o", packedURL.path]) == nil)
        #expect(plan.outputs[1].bytes == (try ModelInput.open(packedURL).totals().bytes))
        #expect(plan.outputs[1].bytes * 2 < plan.outputs[0].bytes)

        // A GGUF-only encoding written to safetensors falls back to F32 and is counted at F32.
        let fallback = try Recipe.parse(
            "steps:\n  - pass: quantize-ggml\n    options: {type: q8_0}\noutputs:\n  - format: safetensors\n"
                + "  - format: gguf\nstrict: false\n", source: "fallback.yaml"
        ) { try RecipeLibrary.load($0) }
        let graph = try TinyModel.graph()
        let (_, planned) = try Pipeline.plan(fallback, for: graph, registry: LatheBuiltins.registry)
        #expect(planned.outputs[0].bytes == (try graph.totals().bytes))
        #expect(planned.outputs[0].fallbacks.count == graph.tensors.filter { $0.info.shape.rank == 2 }.count)
        #expect(planned.outputs[1].fallbacks.isEmpty && planned.outputs[1].bytes < planned.outputs[0].bytes)

        // GGUF's F32 vectors (from a BF16 checkpoint) are counted as written.
        var half = try TinyModel.graph()
        for tensor in half.tensors { try half.replace(TensorCodec.convert(tensor, to: .bf16)) }
        let halfURL = work.appendingPathComponent("bf16.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(half, to: halfURL, options: WriteOptions())
        let toGGUF = try Recipe.parse("outputs:\n  - format: gguf\n", source: "gguf.yaml") {
            try RecipeLibrary.load($0)
        }
        let (_, ggufPlan) = try Pipeline.plan(toGGUF, for: ModelInput.open(halfURL), registry: LatheBuiltins.registry)
        let ggufURL = work.appendingPathComponent("bf16.gguf")
        #expect(runLathe(["convert", halfURL.path, "-o", ggufURL.path]) == nil)
        #expect(ggufPlan.outputs[0].bytes == (try ModelInput.open(ggufURL).totals().bytes))
    }

    @Test(
        "each output of a recipe is prepared from the steps' result: an HF output beside a named lpack is not unpacked")
    func furtherOutputsFromTheSteps() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("w4a4.safetensors")
        let original = try writeTiny(Self.quantized, to: source)
        let recipe = work.appendingPathComponent("both.yaml")
        try "name: both\noutputs:\n  - format: lpack\n  - format: hf\n".write(
            to: recipe, atomically: true, encoding: .utf8)
        let result = try LatheProcess.capture([
            "convert", source.path, "--recipe", recipe.path, "-o", work.appendingPathComponent("m.lpack").path,
        ])
        #expect(result.status == 0, "\(result.errors)")
        // The HF output got the steps' F32 matrices, not the lpack's packed ones dequantized with a warning.
        #expect(!result.errors.contains("converted to F32"), "\(result.errors)")
        let hf = try ModelInput.open(work.appendingPathComponent("m.hf"))
        for tensor in original.tensors where tensor.name.hasSuffix("_proj.weight") {
            #expect(try TensorCodec.decode(hf.tensor(named: tensor.name)) == TensorCodec.decode(tensor))
        }
        let packed = try ModelInput.open(work.appendingPathComponent("m.lpack"))
        #expect(packed.tensors.contains { if case .quantized(.packed) = $0.info.dtype { true } else { false } })
    }

    @Test("a recipe output converted again records the new file's encodings in its manifest")
    func manifestFollowsConversion() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        var (graph, _) = try runPasses(Self.quantized, on: try TinyModel.graph())
        graph.metadata[Provenance.metadataKey] = .string(#"{"lathe_version":"test","tensors":{}}"#)
        let source = work.appendingPathComponent("recipe-output.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(graph, to: source, options: WriteOptions())
        let packedURL = work.appendingPathComponent("packed.lpack")
        #expect(runLathe(["convert", source.path, "-o", packedURL.path]) == nil)
        let packed = try ModelInput.open(packedURL)
        let manifest = try JSONValue.parse(try #require(packed.metadata[Provenance.metadataKey]?.stringValue))
        #expect(manifest["lathe_version"] == .string("test"))
        for tensor in packed.tensors {
            #expect(manifest["tensors"]?[tensor.name] == .string("\(tensor.info.dtype)"), "\(tensor.name)")
        }
        #expect(packed.tensors.contains { if case .quantized(.packed) = $0.info.dtype { true } else { false } })
    }

    @Test("--for-llama-cpp refuses online transforms, naming them")
    func refusesOnlineTransforms() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("hadamard.safetensors")
        let graph = try writeTiny([("online-hadamard", "{}")], to: source)
        let output = work.appendingPathComponent("out.gguf")
        let error = message(runLathe(["convert", source.path, "-o", output.path, "--for-llama-cpp"]))
        #expect(error.contains("U_D"), "\(error)")
        #expect(!FileManager.default.fileExists(atPath: output.path))
        // Without the flag the file is written for Lathe's runtime, with a warning naming the transform.
        #expect(runLathe(["convert", source.path, "-o", output.path]) == nil)
        #expect(try ModelInput.open(output).tensorNames.count == graph.tensorNames.count)
        let log = WarningLog()
        _ = try Convert.prepareGGUF(graph, forLlamaCpp: false, diagnostics: log.diagnostics)
        #expect(log.messages.count == 1)
        #expect(log.messages.first?.contains("not representable: U_D") == true, "\(log.messages)")
    }

    @Test(
        "a model with only fused rotations becomes a GGUF holding exactly llama.cpp's tensors in ggml types (gguf-py)",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)))
    func fusedRotationForLlamaCpp() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let source = work.appendingPathComponent("rotated.safetensors")
        let graph = try writeTiny(
            [
                ("untie-embeddings", "{}"), ("fuse-norms", "{}"),
                ("rotate", #"{"kind": "random", "basis": "none", "keys": false, "seed": 1}"#),
            ], to: source)
        #expect(graph[OnlineTransforms.residualRotationTensor] != nil)
        let output = work.appendingPathComponent("rotated-q8_0.gguf")
        #expect(runLathe(["convert", source.path, "-o", output.path, "--type", "q8_0", "--for-llama-cpp"]) == nil)
        let dump = try #require(try Oracle.json("gguf_dump.py", [output.path]) as? [String: Any])
        let tensors = try #require(dump["tensors"] as? [[String: Any]])
        let names = Set(tensors.compactMap { $0["name"] as? String })
        var expected: Set<String> = ["token_embd.weight", "output.weight", "output_norm.weight"]
        for layer in 0..<2 {
            for suffix in [
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down",
            ] {
                expected.insert("blk.\(layer).\(suffix).weight")
            }
        }
        #expect(names == expected)
        let matrixTypes = Set(
            tensors.filter { ($0["shape"] as? [Int])?.count == 2 }.compactMap { $0["type"] as? String })
        #expect(matrixTypes == ["Q8_0"])
    }
}

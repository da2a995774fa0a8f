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

/// What `convert`'s options choose, and what it refuses before writing anything.
@Suite("Conversion options and refusals")
struct ConversionOptionTests {
    @Test("a type that does not fit a tensor is an error naming it, and nothing is written")
    func typeMismatch() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        let error = runLathe([
            "convert", input.path, "-o", work.appendingPathComponent("out.gguf").path, "--type", "q4_k",
        ])
        #expect(message(error).contains("tensor 'model.embed_tokens.weight'"))
        #expect(message(error).contains("not a multiple of Q4_K's block of 256"))
        #expect(message(error).contains("--fallback-type"))
        #expect(try listing(work) == ["tiny.gguf"])
        // Asked for, another type takes those matrices (as llama-quantize falls back), and a warning lists them.
        let fallbackURL = work.appendingPathComponent("fallback.gguf")
        let fallback = try LatheProcess.capture([
            "convert", input.path, "-o", fallbackURL.path, "--type", "q4_k", "--fallback-type", "q5_0",
        ])
        #expect(fallback.status == 0, "\(fallback.errors)")
        let converted = try ModelInput.open(fallbackURL)
        let matrices = converted.tensors.filter { $0.info.shape.rank == 2 }
        #expect(!matrices.isEmpty)
        for tensor in matrices {
            let fits = tensor.info.shape.dimensions[1] % 256 == 0
            #expect(tensor.info.dtype == .quantized(.ggml(fits ? .q4_K : .q5_0)), "\(tensor.name)")
        }
        let fellBack = matrices.filter { $0.info.shape.dimensions[1] % 256 != 0 }.count
        #expect(
            fallback.errors.contains("\(fellBack) matrices in Q5_0 instead of Q4_K (--fallback-type)"),
            "\(fallback.errors)")
        try FileManager.default.removeItem(at: fallbackURL)
        let alone = message(runLathe(["convert", input.path, "-o", fallbackURL.path, "--fallback-type", "q5_0"]))
        #expect(alone.contains("--fallback-type stands in for the block type"), "\(alone)")
        let unfit = message(
            runLathe(["convert", input.path, "-o", fallbackURL.path, "--type", "q4_k", "--fallback-type", "q6_k"]))
        #expect(unfit.contains("the --fallback-type does not fit either"), "\(unfit)")
        let unknown = runLathe([
            "convert", input.path, "-o", work.appendingPathComponent("out.gguf").path, "--type", "q3_x",
        ])
        #expect(message(unknown).contains("type: got q3_x, expected"))
        let badRule = runLathe([
            "convert", input.path, "-o", work.appendingPathComponent("out.gguf").path, "--tensor-type", "attn_q",
        ])
        #expect(message(badRule).contains("REGEX=TYPE"))
    }

    @Test("per-tensor overrides apply to HF and GGUF names; 1-D tensors keep their type")
    func overrides() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        let output = work.appendingPathComponent("out.gguf")
        #expect(
            runLathe([
                "convert", input.path, "-o", output.path, "--type", "q8_0", "--tensor-type", "attn_v=f16",
                "--tensor-type", #"mlp\.down_proj=q5_0"#,
            ]) == nil)
        let graph = try ModelInput.open(output, options: ReadOptions(naming: .gguf))
        #expect(graph["blk.0.attn_v.weight"]?.info.dtype == .f16)
        #expect(graph["blk.1.ffn_down.weight"]?.info.dtype == .quantized(.ggml(.q5_0)))
        #expect(graph["blk.0.attn_q.weight"]?.info.dtype == .quantized(.ggml(.q8_0)))
        #expect(graph["blk.0.attn_norm.weight"]?.info.dtype == .f32)
        #expect(graph.metadata["general.file_type"] == .uint32(7))
        // A rule's block type reaches matrices only (attn also matches attn_norm); a float type any tensor.
        let ruled = work.appendingPathComponent("ruled.gguf")
        #expect(
            runLathe([
                "convert", input.path, "-o", ruled.path, "--tensor-type", "attn=q4_0", "--tensor-type", "ffn_norm=f16",
            ]) == nil)
        let ruledGraph = try ModelInput.open(ruled, options: ReadOptions(naming: .gguf))
        #expect(ruledGraph["blk.0.attn_q.weight"]?.info.dtype == .quantized(.ggml(.q4_0)))
        #expect(ruledGraph["blk.0.attn_norm.weight"]?.info.dtype == .f32)
        #expect(ruledGraph["blk.0.ffn_norm.weight"]?.info.dtype == .f16)
        // A ResQ model's rotations are not weights: --type and block-type rules leave them alone.
        var rotated = try TinyModel.graph()
        let identity = (0..<64 * 64).map { Float($0 % 65 == 0 ? 1 : 0) }
        try rotated.setFloats(OnlineTransforms.residualRotationTensor, identity, shape: Shape([64, 64]))
        try rotated.setFloats(
            OnlineTransforms.queryKeyRotationTensor(layer: 0), Array(identity[..<256]), shape: Shape([16, 16]))
        let rotatedInput = work.appendingPathComponent("rotated.safetensors")
        _ = try LatheBuiltins.registry.writer("safetensors").write(rotated, to: rotatedInput, options: WriteOptions())
        let typed = work.appendingPathComponent("typed.safetensors")
        #expect(
            runLathe([
                "convert", rotatedInput.path, "-o", typed.path, "--type", "bf16", "--tensor-type", "rotation=q8_0",
            ]) == nil)
        let typedGraph = try ModelInput.open(typed)
        #expect(typedGraph["model.layers.0.mlp.up_proj.weight"]?.info.dtype == .bf16)
        #expect(typedGraph[OnlineTransforms.residualRotationTensor]?.info.dtype == .f32)
        #expect(typedGraph[OnlineTransforms.queryKeyRotationTensor(layer: 0)]?.info.dtype == .f32)
    }

    @Test("options that would do nothing for this output, or without a recipe, are refused and nothing is written")
    func pointlessOptions() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        let gguf = work.appendingPathComponent("out.gguf").path
        let safetensors = work.appendingPathComponent("out.safetensors").path
        for (arguments, expected) in [
            (["-o", gguf, "--compress", "zstd"], "--compress applies to lpack output"),
            (["-o", gguf, "--max-shard-size", "1000"], "--max-shard-size applies to safetensors and HF output"),
            (["-o", safetensors, "--for-llama-cpp"], "--for-llama-cpp applies to GGUF output"),
            (["-o", gguf, "--work-dir", work.path], "--work-dir needs --recipe"),
            (["-o", gguf, "--no-manifest"], "--no-manifest needs --recipe"),
            (["-o", gguf, "--recipe", "q8_0", "--resume"], "--resume needs --work-dir"),
        ] {
            let error = message(runLathe(["convert", input.path] + arguments))
            #expect(error.contains(expected), "\(arguments): \(error)")
        }
        #expect(try listing(work) == ["tiny.gguf"])
    }

    @Test("an existing output is kept without --force and replaced with it")
    func force() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: input, options: WriteOptions())
        let output = work.appendingPathComponent("out.safetensors")
        try Data("precious".utf8).write(to: output)
        #expect(message(runLathe(["convert", input.path, "-o", output.path])).contains("already exists; pass --force"))
        #expect(try String(contentsOf: output, encoding: .utf8) == "precious")
        #expect(runLathe(["convert", input.path, "-o", output.path, "--force"]) == nil)
        #expect(try ModelInput.open(output).tensors.count == 20)
        #expect(try listing(work) == ["out.safetensors", "tiny.gguf"])
    }

    @Test("bad input files give one line naming the file and field, and nothing is written")
    func badInput() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let good = work.appendingPathComponent("good.gguf")
        _ = try GGUFWriter().write(TinyModel.graph(), to: good, options: WriteOptions())
        let bytes = [UInt8](try Data(contentsOf: good))
        let truncated = work.appendingPathComponent("truncated.gguf")
        try Data(bytes.prefix(bytes.count - 100)).write(to: truncated)
        let text = work.appendingPathComponent("notes.txt")
        try Data("hello".utf8).write(to: text)
        for (input, expected) in [
            (truncated, "tensor 'output_norm.weight'"), (text, "not a recognised model"),
            (work.appendingPathComponent("missing.gguf"), "no such file"),
        ] {
            let line = message(
                runLathe(["convert", input.path, "-o", work.appendingPathComponent("out.safetensors").path]))
            #expect(line.contains(input.path) && line.contains(expected), "\(line)")
            #expect(!line.contains("\n"))
        }
        #expect(try listing(work) == ["good.gguf", "notes.txt", "truncated.gguf"])
    }
}

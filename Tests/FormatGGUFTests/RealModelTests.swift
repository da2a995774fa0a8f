import FormatGGUF
import Foundation
import LatheCore
import LatheTestSupport
import Testing

let modelAvailable = Fixtures.smolLM2IsAvailable
let modelSkip = Comment(rawValue: Fixtures.smolLM2SkipReason)

func readSmol(_ naming: TensorNaming = .gguf) throws -> ModelGraph {
    try GGUFReader().read(Fixtures.smolLM2, options: ReadOptions(naming: naming))
}

/// Float64 sums of a tensor's dequantized values.
func sums(_ values: [Float]) -> (sum: Double, abs: Double, squares: Double) {
    values.reduce((0.0, 0.0, 0.0)) { ($0.0 + Double($1), $0.1 + abs(Double($1)), $0.2 + Double($1) * Double($1)) }
}

@Suite("SmolLM2 GGUF (formats.md §5)", .enabled(if: modelAvailable, modelSkip))
struct RealModelTests {
    @Test("header, metadata and tensor inventory match the reference inspection")
    func inventory() throws {
        let graph = try readSmol()
        #expect(graph.metadata.count == 33)
        #expect(graph.tensors.count == 272)
        #expect(graph.metadata.keys.first == "general.architecture")
        #expect(graph.metadata.keys.last == "general.quantization_version")
        #expect(graph.metadata["general.name"] == .string("Smollm2 135M 8k Lc100K Mix1 Ep2"))
        #expect(graph.metadata["llama.rope.freq_base"] == .float32(100_000))
        #expect(graph.metadata["llama.attention.layer_norm_rms_epsilon"] == .float32(1e-5))
        #expect(graph.metadata["general.languages"] == .array(.string, [.string("en")]))
        #expect(graph.metadata["tokenizer.ggml.add_bos_token"] == .bool(false))
        let config = try #require(graph.config)
        let dimensions: [Int] = [
            config.layerCount, config.hiddenSize, config.headCount, config.kvHeadCount, config.headDim, config.ffnSize,
            config.vocabSize,
        ]
        #expect(dimensions == [30, 576, 9, 3, 64, 1536, 49152])
        #expect(config.tiedEmbeddings)
        let tokenizer = try #require(graph.tokenizer)
        #expect(tokenizer.tokens.count == 49152 && tokenizer.merges.count == 48900)
        #expect(tokenizer.tokens[1] == "<|im_start|>" && tokenizer.tokens[216] == "Ġ")
        #expect(tokenizer.merges.first == "Ġ t" && tokenizer.merges.last == "ect able")
        #expect(tokenizer.tokenTypes.filter { $0 == 3 }.count == 17)
        #expect(tokenizer.chatTemplate?.count == 368)
        #expect(
            Array(graph.tensorNames.prefix(3)) == [
                "token_embd.weight", "blk.0.attn_norm.weight", "blk.0.ffn_down.weight",
            ])
        #expect(graph.tensorNames[10] == "blk.1.attn_norm.weight" && graph.tensorNames[19] == "blk.10.attn_norm.weight")
        #expect(graph.tensorNames.last == "output_norm.weight")
        let embedding = try graph.tensor(named: "token_embd.weight")
        #expect(embedding.info.dtype == .quantized(.ggml(.q8_0)) && embedding.info.shape == [49152, 576])
        #expect(try graph.totals().bytes == 96_576_768)
        #expect(try graph.totals().elements == 134_515_008)
    }

    @Test("blk.0.attn_q dequantizes to the reference vectors (sums to 1e-9 relative)")
    func attentionQuery() throws {
        let values = try TensorCodec.decode(readSmol().tensor(named: "blk.0.attn_q.weight"))
        #expect(
            Array(values.prefix(8)) == [
                -0.0963134765625, 0.1573486328125, -0.0963134765625, -0.73046875, 1.1719970703125, -0.0963134765625,
                0.030517578125, 0.6646728515625,
            ])
        #expect(values[16] == -0.22314453125 && values[31] == -0.0963134765625 && values[32] == -0.34619140625)
        #expect(Array(values[576..<580]) == [-0.1173095703125, -0.1173095703125, -0.19281005859375, 0.26019287109375])
        let s = sums(values)
        #expect(isClose(s.sum, 59.22322082519531, relative: 1e-9))
        #expect(isClose(s.abs, 63395.39872741699, relative: 1e-9))
        #expect(isClose(s.squares, 26749.573275085306, relative: 1e-9))
    }

    @Test("the token embedding, norms and K projection match the reference vectors")
    func otherTensors() throws {
        let graph = try readSmol()
        let embedding = try TensorCodec.decode(graph.tensor(named: "token_embd.weight"))
        #expect(
            Array(embedding.prefix(4)) == [
                -0.10654449462890625, 0.032978057861328125, 0.048198699951171875, -0.022830963134765625,
            ])
        #expect(Array(embedding[(446 * 576)..<(446 * 576 + 2)]) == [0.015903472900390625, 0.03180694580078125])
        #expect(isClose(sums(embedding).sum, -15353.04449415207, relative: 1e-9))
        #expect(isClose(sums(embedding).squares, 520415.71544763993, relative: 1e-9))
        let norm = try TensorCodec.decode(graph.tensor(named: "blk.0.attn_norm.weight"))
        #expect(isClose(sums(norm).sum, 0.6129436492919922, relative: 1e-12))
        #expect(sums(try TensorCodec.decode(graph.tensor(named: "output_norm.weight"))).sum == 1038.33203125)
        let k = try TensorCodec.decode(graph.tensor(named: "blk.0.attn_k.weight"))
        #expect(Array(k.prefix(4)) == [-0.1552734375, 0.3402099609375, -0.485595703125, -0.3204345703125])
        #expect(isClose(sums(k).sum, 26.937057495117188, relative: 1e-9))
    }

    @Test("HF layout un-permutes q/k rows: HF q_proj row 32 is GGUF row 1, names map both ways")
    func huggingFaceLayout() throws {
        let gguf = try readSmol()
        let hf = try readSmol(.huggingface)
        #expect(hf.naming == .huggingface && hf.tensors.count == 272)
        #expect(hf["model.embed_tokens.weight"] != nil && hf["token_embd.weight"] == nil)
        let q = try TensorCodec.decode(hf.tensor(named: "model.layers.0.self_attn.q_proj.weight"))
        #expect(
            Array(q[(32 * 576)..<(32 * 576 + 4)]) == [
                -0.1173095703125, -0.1173095703125, -0.19281005859375, 0.26019287109375,
            ])
        #expect(Array(q[576..<580]) == [-0.1591796875, 0.39794921875, -0.0198974609375, -1.2734375])
        let k = try TensorCodec.decode(hf.tensor(named: "model.layers.0.self_attn.k_proj.weight"))
        #expect(Array(k[(32 * 576)..<(32 * 576 + 4)]) == [0.056640625, 0.056640625, -0.126953125, 0.1484375])
        for (ggufName, hfName) in zip(gguf.tensorNames, hf.tensorNames) {
            #expect(LlamaTensorNames.hf(fromGGUF: ggufName) == hfName)
            #expect(LlamaTensorNames.gguf(fromHF: hfName) == ggufName)
        }
    }

    @Test(
        "real weights quantize to llama-quantize's bytes, K-quants included",
        arguments: [
            // SHA-256 of the tensor in `llama-quantize --pure` output from the F32 file (no importance
            // matrix), llama.cpp as vendored in llama-cpp-python 0.3.36 (Benchmarks/llamacpp_check.py).
            (
                "blk.0.ffn_down.weight", GGMLBlockType.q4_K,
                "7a46652ed272410d01ed18e54a6e4fd92f5dfbc8788dbcd688bedca169f49bde"
            ),
            ("blk.29.ffn_down.weight", .q4_K, "f1643d73ddf7addaecebd2fdf3f1213ccf7070f052d4f7978287128fcd403eb6"),
            ("blk.0.ffn_down.weight", .q6_K, "1d8054fa97a5b0a307b9911370f84d9ddea525f779030f32b062b4b8590c8be5"),
            ("blk.29.ffn_down.weight", .q6_K, "786a55a48dacfdc8756174bf91800bb34cee8c5b3a6db29f924c6de0ccbe2462"),
            ("token_embd.weight", .q5_0, "bae4fe1c6708e15bed7acc4b2cd2a062e153d40211f88a6c25a283b193e0abbf"),
            ("token_embd.weight", .q5_1, "485c2b64c5e4ddaa6eb523adb395553328fd5f402b1f920e39b43f4c483f6184"),
            ("token_embd.weight", .q8_0, "0d728edd2a012d1663a6069567240d124c752bab88b6fcbe1a985eae428193c3"),
        ])
    func llamaQuantizeBytes(name: String, type: GGMLBlockType, sha256: String) throws {
        let tensor = try readSmol().tensor(named: name)
        let f32 = try TensorCodec.convert(tensor, to: .f32)
        let quantized = try TensorCodec.convert(f32, to: .quantized(.ggml(type)))
        var digest = SHA256()
        try quantized.forEachChunk { digest.update($0) }
        #expect(digest.finalize() == sha256)
    }

    @Test(
        "writing the file back gives the same bytes; gguf-py reads it and dequantizes as Lathe does",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)))
    func rewriteAndOracle() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let output = directory.appendingPathComponent("copy.gguf")
        let graph = try readSmol(.huggingface)
        _ = try GGUFWriter().write(graph, to: output, options: WriteOptions())
        #expect(try Data(contentsOf: output) == Data(contentsOf: Fixtures.smolLM2))

        let dump = try #require(try Oracle.json("gguf_dump.py", [output.path]) as? [String: Any])
        let tensors = try #require(dump["tensors"] as? [[String: Any]])
        let lathe = try readSmol()
        #expect(tensors.count == 272)
        for entry in tensors
        where ["blk.0.attn_q.weight", "token_embd.weight", "blk.29.ffn_down.weight", "output_norm.weight"].contains(
            entry["name"] as? String)
        {
            let name = try #require(entry["name"] as? String)
            let values = try TensorCodec.decode(lathe.tensor(named: name))
            #expect(entry["shape"] as? [Int] == lathe[name]?.info.shape.dimensions)
            #expect((entry["head"] as? [Double])?.map(Float.init) == Array(values.prefix(8)), "\(name)")
            #expect(isClose(entry["sum"] as? Double ?? .nan, sums(values).sum, relative: 1e-12), "\(name)")
        }
        let metadata = try #require(dump["metadata"] as? [String: [String: Any]])
        #expect(metadata.count == 33)
        #expect(metadata["llama.block_count"]?["type"] as? [String] == ["UINT32"])
        #expect(metadata["tokenizer.ggml.merges"]?["type"] as? [String] == ["ARRAY", "STRING"])
    }
}

import FormatGGUF
import Foundation
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

/// Every metadata type, including arrays of several element types and an empty array.
let everyType: [(String, MetadataValue)] = [
    ("test.u8", .uint8(200)), ("test.i8", .int8(-100)), ("test.u16", .uint16(65000)), ("test.i16", .int16(-32000)),
    ("test.u32", .uint32(4_000_000_000)), ("test.i32", .int32(-2_000_000_000)), ("test.f32", .float32(0.1)),
    ("test.bool", .bool(true)), ("test.string", .string("héllo ✓")),
    ("test.array_i32", .array(.int32, [.int32(1), .int32(-2)])), ("test.array_empty", .array(.string, [])),
    ("test.array_f64", .array(.float64, [.float64(1e-300)])),
    ("test.u64", .uint64(UInt64.max)), ("test.i64", .int64(Int64.min)), ("test.f64", .float64(-2.5e100)),
]

@Suite("GGUF writer")
struct GGUFWriterTests {
    @Test("all 13 metadata types and every tensor survive a write and a read")
    func roundTrip() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var graph = try TinyModel.graph()
        for (key, value) in everyType { graph.metadata[key] = value }
        let url = directory.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(graph, to: url, options: WriteOptions())
        let back = try GGUFReader().read(url, options: ReadOptions())
        for (key, value) in everyType { #expect(back.metadata[key] == value, "\(key)") }
        #expect(back.tensorNames == graph.tensorNames)
        for tensor in graph.tensors {
            #expect(
                try TensorCodec.decode(back.tensor(named: tensor.name)) == TensorCodec.decode(tensor), "\(tensor.name)")
        }
        #expect(back.config == graph.config)
        #expect(back.tokenizer == graph.tokenizer)
    }

    @Test("a non-default alignment is recorded and honoured", arguments: [8, 64, 4096])
    func alignment(value: Int) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("aligned.gguf")
        let graph = try TinyModel.graph(TinyModel.config(layers: 1))
        _ = try GGUFWriter().write(graph, to: url, options: WriteOptions(parameters: ["alignment": "\(value)"]))
        let back = try GGUFReader().read(url, options: ReadOptions())
        #expect(back.metadata["general.alignment"] == .uint32(UInt32(value)))
        #expect(
            try TensorCodec.decode(back.tensor(named: "model.norm.weight"))
                == TensorCodec.decode(graph.tensor(named: "model.norm.weight")))
        // GGUF → GGUF keeps the source's alignment, hence its bytes.
        let copy = directory.appendingPathComponent("copy.gguf")
        _ = try GGUFWriter().write(back, to: copy, options: WriteOptions())
        #expect(try Data(contentsOf: copy) == Data(contentsOf: url))
    }

    @Test(
        "gguf-py reads Lathe's output: every key with its type, every tensor's values",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)))
    func oracle() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var graph = try TinyModel.graph()
        for (key, value) in everyType { graph.metadata[key] = value }
        // Mixed encodings: the oracle must dequantize each as Lathe does.
        for (name, type) in [
            ("model.layers.0.mlp.up_proj.weight", GGMLBlockType.q4_0), ("model.layers.1.mlp.down_proj.weight", .q5_1),
            ("model.layers.0.self_attn.v_proj.weight", .q8_0),
        ] {
            try graph.replace(TensorCodec.convert(graph.tensor(named: name), to: .quantized(.ggml(type))))
        }
        try graph.replace(TensorCodec.convert(graph.tensor(named: "model.norm.weight"), to: .f16))
        let url = directory.appendingPathComponent("tiny.gguf")
        _ = try GGUFWriter().write(graph, to: url, options: WriteOptions())
        let dump = try #require(try Oracle.json("gguf_dump.py", [url.path]) as? [String: Any])
        let metadata = try #require(dump["metadata"] as? [String: [String: Any]])
        let expectedTypes = [
            "test.u8": "UINT8", "test.i8": "INT8", "test.u16": "UINT16", "test.i16": "INT16", "test.u32": "UINT32",
            "test.i32": "INT32", "test.f32": "FLOAT32", "test.bool": "BOOL", "test.string": "STRING",
            "test.u64": "UINT64",
            "test.i64": "INT64", "test.f64": "FLOAT64", "test.array_i32": "ARRAY",
        ]
        for (key, type) in expectedTypes { #expect((metadata[key]?["type"] as? [String])?.first == type, "\(key)") }
        #expect(metadata["test.string"]?["value"] as? String == "héllo ✓")
        #expect(metadata["test.array_i32"]?["value"] as? [Int] == [1, -2])
        #expect(metadata["llama.block_count"]?["value"] as? Int == 2)
        let lathe = try GGUFReader().read(url, options: ReadOptions(naming: .gguf))
        for entry in try #require(dump["tensors"] as? [[String: Any]]) {
            let name = try #require(entry["name"] as? String)
            let values = try TensorCodec.decode(lathe.tensor(named: name))
            #expect((entry["head"] as? [Double])?.map(Float.init) == Array(values.prefix(8)), "\(name)")
            #expect(
                isClose(entry["sum"] as? Double ?? .nan, sums(values).sum, relative: 1e-12, absolute: 1e-12), "\(name)")
        }
    }

    @Test(
        "Lathe's quantizers are byte-identical to gguf-py's on random data",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)),
        arguments: [GGMLBlockType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0])
    func quantizerOracle(type: GGMLBlockType) throws {
        var generator = SeededGenerator(seed: UInt64(type.rawValue))
        try expectOracleBytes(
            type,
            inputs: [
                (0..<(64 * 256)).map { _ in Float(generator.nextGaussian()) },
                (0..<(8 * 256)).map { i in i % 7 == 0 ? 0 : Float(generator.nextUniform() * 1000 - 3) },
            ])
    }

    @Test(
        "Lathe's quantizers are byte-identical to gguf-py's on SmolLM2's weights",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)),
        .enabled(if: Fixtures.smolLM2IsAvailable, Comment(rawValue: Fixtures.smolLM2SkipReason)),
        arguments: [GGMLBlockType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0])
    func quantizerOracleOnRealWeights(type: GGMLBlockType) throws {
        try expectOracleBytes(
            type,
            inputs: [Array(try TensorCodec.decode(readSmol().tensor(named: "blk.3.ffn_up.weight")).prefix(576 * 64))]
        )
    }

    /// Quantizes each input with Lathe and with gguf-py's reference quantizer, expecting the same bytes.
    private func expectOracleBytes(_ type: GGMLBlockType, inputs: [[Float]]) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, values) in inputs.enumerated() {
            let source = directory.appendingPathComponent("in\(index).f32")
            let expected = directory.appendingPathComponent("out\(index).bin")
            try values.withUnsafeBytes { try Data($0).write(to: source) }
            try Oracle.run("gguf_quantize.py", [type.name, source.path, "256", expected.path])
            let lathe = try values.withUnsafeBufferPointer { try TensorCodec.encode($0, as: .quantized(.ggml(type))) }
            #expect(lathe == [UInt8](try Data(contentsOf: expected)), "\(type.name) input \(index)")
        }
    }

    @Test("tensors the format cannot hold are refused, naming the tensor, and nothing is written")
    func refusals() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bad.gguf")
        let graph = try ModelGraph(
            source: "memory",
            tensors: [
                Tensor(
                    info: TensorInfo(name: "flags", dtype: .bool, shape: [4]),
                    storage: TensorStorage(bytes: [0, 1, 0, 1]))
            ])
        #expect {
            try GGUFWriter().write(graph, to: url, options: WriteOptions())
        } throws: { error in
            (error as? GGUFError)?.field == "tensor 'flags'"
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }
}

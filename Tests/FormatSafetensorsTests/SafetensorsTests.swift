import FormatSafetensors
import Foundation
import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

/// A safetensors file assembled by hand: header JSON (as given) and a data buffer.
func rawSafetensors(_ header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
    let json = Array(header.utf8)
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(json.count)).littleEndian) { bytes += $0 }
    return bytes + json + data
}

/// A graph of assorted dtypes with no metadata (so the reference writer's output is comparable).
func assortedGraph() throws -> ModelGraph {
    var generator = SeededGenerator(seed: 4)
    let floats = (0..<24).map { _ in Float(generator.nextGaussian()) }
    return try ModelGraph(
        source: "memory",
        tensors: [
            Tensor(
                info: TensorInfo(name: "b.weight", dtype: .f32, shape: [4, 6]), storage: TensorStorage(values: floats)),
            Tensor(
                info: TensorInfo(name: "a.half", dtype: .f16, shape: [2, 3]),
                storage: TensorStorage(values: floats.prefix(6).map { Float16($0) })),
            Tensor(
                info: TensorInfo(name: "ids", dtype: .i64, shape: [3]),
                storage: TensorStorage(values: [Int64(1), -2, 3])),
            Tensor(
                info: TensorInfo(name: "mask", dtype: .bool, shape: [5]),
                storage: TensorStorage(bytes: [1, 0, 1, 1, 0])),
            Tensor(
                info: TensorInfo(name: "bytes", dtype: .u8, shape: [2, 2]),
                storage: TensorStorage(bytes: [7, 8, 9, 10])),
            Tensor(
                info: TensorInfo(name: "scalar", dtype: .f64, shape: []), storage: TensorStorage(values: [Double.pi])),
            Tensor(info: TensorInfo(name: "empty", dtype: .f32, shape: [0, 3]), storage: TensorStorage(bytes: [])),
        ])
}

@Suite("safetensors")
struct SafetensorsTests {
    @Test("the minimal file from formats.md §1.3 reads, and the writer pads it to N = 64")
    func minimal() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("min.safetensors")
        try Data(
            rawSafetensors(
                #"{"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#, data: .init(repeating: 0, count: 16))
        ).write(to: url)
        let graph = try SafetensorsReader().read(url, options: ReadOptions())
        #expect(graph.tensorNames == ["test"])
        #expect(try graph.tensor(named: "test").storage().values(as: Int32.self) == [0, 0, 0, 0])
        let copy = directory.appendingPathComponent("copy.safetensors")
        var plain = graph
        plain.metadata = Metadata()
        _ = try SafetensorsWriter().write(plain, to: copy, options: WriteOptions())
        let bytes = [UInt8](try Data(contentsOf: copy))
        // {"__metadata__":{"format":"pt"},…} is 91 bytes; padded to 96.
        #expect(bytes.count % 8 == 0)
        #expect(bytes[8] == UInt8(ascii: "{"))
    }

    @Test("assorted dtypes round-trip and the writer keeps the reference order (dtype alignment, then name)")
    func roundTrip() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("a.safetensors")
        let graph = try assortedGraph()
        _ = try SafetensorsWriter().write(graph, to: url, options: WriteOptions())
        let back = try SafetensorsReader().read(url, options: ReadOptions())
        // U64 > I64 > F64 > … > F32 > … > F16 > … > U8 > … > BOOL, ties by name.
        #expect(back.tensorNames == ["ids", "scalar", "b.weight", "empty", "a.half", "bytes", "mask"])
        for tensor in graph.tensors {
            let other = try back.tensor(named: tensor.name)
            #expect(other.info == tensor.info)
            #expect(try other.storage().withUnsafeBytes { Array($0) } == tensor.storage().withUnsafeBytes { Array($0) })
        }
    }

    @Test(
        "the safetensors package reads Lathe's output and rewrites it byte for byte",
        .enabled(if: Oracle.isAvailable, Comment(rawValue: Oracle.skipReason)))
    func oracle() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("lathe.safetensors")
        let reference = directory.appendingPathComponent("reference.safetensors")
        let graph = try assortedGraph()
        _ = try SafetensorsWriter().write(graph, to: url, options: WriteOptions())
        let dump = try #require(try Oracle.json("safetensors_dump.py", [url.path, reference.path]) as? [String: Any])
        #expect(try Data(contentsOf: url) == Data(contentsOf: reference), "byte-identical to the reference writer")
        let tensors = try #require(dump["tensors"] as? [String: [String: Any]])
        #expect(tensors.count == graph.tensors.count)
        for tensor in graph.tensors {
            let entry = try #require(tensors[tensor.name])
            #expect(entry["shape"] as? [Int] == tensor.info.shape.dimensions)
            let values = try TensorCodec.decode(tensor)
            #expect((entry["head"] as? [Double])?.map(Float.init) == Array(values.prefix(8)), "\(tensor.name)")
        }
        #expect((dump["metadata"] as? [String: String]) == ["format": "pt"])
    }

    @Test("typed metadata, the config and the tokenizer survive safetensors")
    func metadata() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("tiny.safetensors")
        var graph = try TinyModel.graph()
        graph.metadata["custom.float"] = .float32(0.1)
        graph.metadata["custom.list"] = .array(.uint64, [.uint64(.max)])
        graph.metadata["lathe.safetensors.note"] = .string("kept")
        _ = try SafetensorsWriter().write(graph, to: url, options: WriteOptions())
        let back = try SafetensorsReader().read(url, options: ReadOptions())
        #expect(back.metadata == graph.metadata)
        #expect(back.config == graph.config)
        #expect(back.tokenizer == graph.tokenizer)
    }

    @Test("sharded checkpoints: shards, index, and the same tensors back")
    func sharded() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("sharded")
        let graph = try TinyModel.graph()
        let report = try SafetensorsWriter().write(
            graph, to: url, options: WriteOptions(parameters: ["max-shard-size": "40000"]))
        let shards = report.files.count - 1
        #expect(shards > 1, "\(report.files)")
        #expect(
            report.files.first?.hasSuffix(String(format: "model-00001-of-%05d.safetensors", shards)) == true,
            "\(report.files)")
        #expect(report.files.last?.hasSuffix("model.safetensors.index.json") == true)
        // The model's metadata (the tokenizer) is written once, in the first shard, not in every one.
        let carriesMetadata = try report.files.dropLast().map { path in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            let length = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let header = try JSONValue.parse(String(decoding: bytes[8..<(8 + length)], as: UTF8.self))
            return header["__metadata__"]?["lathe.metadata"] != nil
        }
        #expect(carriesMetadata == [true] + Array(repeating: false, count: shards - 1))
        // The directory is recognised as safetensors by sniffing, as a file is.
        #expect(SafetensorsReader.sniff(url, prefix: []))
        for source in [url, url.appendingPathComponent("model.safetensors.index.json")] {
            let back = try SafetensorsReader().read(source, options: ReadOptions())
            #expect(Set(back.tensorNames) == Set(graph.tensorNames))
            #expect(back.config == graph.config && back.tokenizer == graph.tokenizer)
            #expect(
                try TensorCodec.decode(back.tensor(named: "model.norm.weight"))
                    == TensorCodec.decode(graph.tensor(named: "model.norm.weight")))
        }

        // The index must describe the shards: a tensor it leaves out, one it maps to the wrong
        // shard, and one no shard holds are each an error naming the index and the entry.
        let indexURL = url.appendingPathComponent("model.safetensors.index.json")
        let original = try JSONValue.parse(String(contentsOf: indexURL, encoding: .utf8))
        let weightMap = try #require(original["weight_map"]?.objectValue)
        let (first, firstShard) = (weightMap[0].key, try #require(weightMap[0].value.stringValue))
        let otherShard = try #require(weightMap.compactMap(\.value.stringValue).first { $0 != firstShard })
        let cases: [(String, [(key: String, value: JSONValue)], String)] = [
            ("left out", Array(weightMap.dropFirst()), "missing: \(firstShard) holds a tensor the index does not map"),
            (
                "wrong shard", [(first, .string(otherShard))] + weightMap.dropFirst(),
                "maps the tensor to \(otherShard), but \(firstShard) holds it"
            ),
            (
                "held by none", weightMap + [("model.bogus.weight", .string(firstShard))],
                "\(firstShard) holds no such tensor"
            ),
        ]
        for (label, map, problem) in cases {
            var edited = original.objectValue ?? []
            edited = edited.map { $0.key == "weight_map" ? ($0.key, .object(map)) : $0 }
            try Data(JSONValue.object(edited).serialized().utf8).write(to: indexURL)
            let error = #expect(throws: SafetensorsError.self, "\(label)") {
                try SafetensorsReader().read(url, options: ReadOptions())
            }
            #expect(error?.path == indexURL.path, "\(label)")
            #expect(error?.problem == problem, "\(label): \(String(describing: error))")
        }
    }
}

@Suite("safetensors bad input")
struct SafetensorsBadInputTests {
    func failure(_ bytes: [UInt8]) throws -> SafetensorsError? {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bad.safetensors")
        try Data(bytes).write(to: url)
        do {
            _ = try SafetensorsReader().read(url, options: ReadOptions())
            return nil
        } catch let error as SafetensorsError {
            #expect(error.path == url.path)
            return error
        }
    }

    static let entry = #"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#

    @Test(
        "each reader rule has its own error",
        arguments: [
            (rawSafetensors("", data: []).prefix(5).map { $0 }, SafetensorsError.Rule.headerTooSmall, "header length"),
            (rawSafetensors("{}", data: [], declaredLength: 200_000_000), .headerTooLarge, "header length"),
            (rawSafetensors("{}", data: [], declaredLength: 50), .invalidHeaderLength, "header length"),
            ([2, 0, 0, 0, 0, 0, 0, 0, 0xC3, 0x28], .invalidHeader, "header"),
            (rawSafetensors("[1, 2]", data: []), .invalidHeaderDeserialization, "header"),
            (
                rawSafetensors(#"{"a":\#(entry),"a":\#(entry)}"#, data: .init(repeating: 0, count: 8)), .duplicateKey,
                "header byte 54"
            ),
            (
                rawSafetensors(
                    #"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)),
                .unknownDType, "tensor 'a'"
            ),
            (
                rawSafetensors(
                    #"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)),
                .invalidHeaderDeserialization, "tensor 'a'"
            ),
            (rawSafetensors(#"{"__metadata__":{"x":0}}"#, data: []), .invalidHeaderDeserialization, "__metadata__.x"),
            (
                rawSafetensors(
                    #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}"#, data: .init(repeating: 0, count: 16)),
                .invalidOffset, "tensor 'a'"
            ),
            (
                rawSafetensors(
                    #"{"a":\#(entry),"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#,
                    data: .init(repeating: 0, count: 12)),
                .invalidOffset, "tensor 'b'"
            ),
            (
                rawSafetensors(
                    #"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: .init(repeating: 0, count: 8)),
                .tensorInvalidInfo, "tensor 'a'"
            ),
            (
                rawSafetensors(
                    #"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}"#,
                    data: .init(repeating: 0, count: 8)), .validationOverflow, "tensor 'a'"
            ),
            (
                rawSafetensors(#"{"a":\#(entry)}"#, data: .init(repeating: 0, count: 9)), .metadataIncompleteBuffer,
                "data"
            ),
            (
                rawSafetensors(#"{"a":\#(entry)}"#, data: .init(repeating: 0, count: 7)), .metadataIncompleteBuffer,
                "data"
            ),
            (
                rawSafetensors(#"{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}"#, data: [0]), .misalignedSlice,
                "tensor 'a'"
            ),
        ])
    func rules(bytes: [UInt8], rule: SafetensorsError.Rule, field: String) throws {
        let error = try #require(try failure(bytes))
        #expect(error.rule == rule)
        #expect(error.field == field)
    }

    @Test("leading and trailing whitespace around the header is accepted; zero tensors are valid")
    func lenient() throws {
        #expect(try failure(rawSafetensors("  \n{\"a\":\(Self.entry)}  ", data: .init(repeating: 0, count: 8))) == nil)
        #expect(try failure(rawSafetensors("{}", data: [])) == nil)
    }
}

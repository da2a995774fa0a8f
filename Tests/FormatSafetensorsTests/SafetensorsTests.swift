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
    @Test("the minimal file from formats.md §1.3 reads; the writer adds format pt and pads the header to N = 96")
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
        // The reference writer's header: {"__metadata__":{"format":"pt"},…} (91 bytes), padded with
        // spaces to 96 so the data starts 8-aligned, then the 16 data bytes.
        let json = #"{"__metadata__":{"format":"pt"},"test":{"dtype":"I32","shape":[2,2],"data_offsets":[0,16]}}"#
        let headerLength = bytes[0..<8].reversed().reduce(0) { $0 << 8 | Int($1) }
        #expect(headerLength == 96)
        #expect(bytes.count == 8 + 96 + 16)
        #expect(Array(bytes[8..<(8 + json.utf8.count)]) == Array(json.utf8))
        #expect(bytes[(8 + json.utf8.count)..<(8 + 96)].allSatisfy { $0 == UInt8(ascii: " ") })
    }

    /// Values worked out by hand from each format's definition: sign, exponent bits with their bias,
    /// mantissa bits; subnormals where the exponent field is 0.
    @Test(
        "8-bit float dtypes decode to their defined values: normals, subnormals, extremes, NaN and infinity",
        arguments: [
            // OCP E4M3 ("fn"): bias 7, no infinities, only S.1111.111 is NaN; 448 is the largest.
            (
                "F8_E4M3", [0x38, 0x7E, 0xFE, 0x01, 0x08, 0x80, 0x7F, 0xFF],
                [1, 448, -448, 0x1p-9, 0x1p-6, -0.0, .nan, .nan]
            ),
            // OCP E5M2: bias 15, IEEE infinities and NaNs.
            (
                "F8_E5M2", [0x3C, 0x7B, 0x7C, 0xFC, 0x7D, 0x01, 0x04, 0xC0],
                [1, 57344, .infinity, -.infinity, .nan, 0x1p-16, 0x1p-14, -2]
            ),
            // MX E8M0 scale: 2^(bits − 127), 0xFF is NaN.
            (
                "F8_E8M0", [0x7F, 0x80, 0x00, 0xFE, 0xFF, 0x7E, 0x85, 0x70],
                [1, 2, 0x1p-127, 0x1p127, .nan, 0.5, 64, 0x1p-15]
            ),
            // FNUZ variants: bias 8 and 16, 0x80 is the only NaN, no negative zero, no infinities.
            (
                "F8_E4M3FNUZ", [0x40, 0x7F, 0x80, 0x00, 0x01, 0xC0, 0x08, 0xFF],
                [1, 240, .nan, 0, 0x1p-10, -1, 0x1p-7, -240]
            ),
            (
                "F8_E5M2FNUZ", [0x40, 0x7F, 0x80, 0x00, 0x01, 0xC0, 0x04, 0xFF],
                [1, 57344, .nan, 0, 0x1p-17, -1, 0x1p-15, -57344]
            ),
        ] as [(String, [UInt8], [Float])])
    func float8(dtype: String, bits: [UInt8], expected: [Float]) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("f8.safetensors")
        let header = #"{"x":{"dtype":""# + dtype + #"","shape":[8],"data_offsets":[0,8]}}"#
        try Data(rawSafetensors(header, data: bits)).write(to: url)
        let values = try TensorCodec.decode(SafetensorsReader().read(url, options: ReadOptions()).tensor(named: "x"))
        #expect(values.count == 8)
        for (index, (value, wanted)) in zip(values, expected).enumerated() {
            let same = wanted.isNaN ? value.isNaN : value == wanted && value.sign == wanted.sign
            #expect(same, "\(dtype) byte 0x\(String(bits[index], radix: 16)): \(value), expected \(wanted)")
        }
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

        // Beside a model.safetensors the shards are left out, as transformers loads the single file
        // first, and that is said.
        let both = directory.appendingPathComponent("both")
        try FileManager.default.copyItem(at: url, to: both)
        var single = graph
        for name in single.tensorNames.dropFirst() { try single.remove(name) }
        _ = try SafetensorsWriter().write(
            single, to: both.appendingPathComponent("model.safetensors"), options: WriteOptions())
        let log = WarningLog()
        let read = try SafetensorsReader().read(both, options: ReadOptions(diagnostics: log.diagnostics))
        #expect(read.tensorNames == single.tensorNames)
        #expect(log.messages.count == 1 && log.messages[0].contains("reading model.safetensors"), "\(log.messages)")

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
            ("empty", [], "names no tensors"),
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
            // Not an object and not JSON either: the syntax error, where it is.
            (rawSafetensors("[1, }", data: []), .invalidHeaderDeserialization, "header byte 4"),
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

@Suite("HF config.json fields")
struct HFConfigFieldTests {
    /// The tiny model written as an HF directory in `directory`, with `edit` applied to the fields of
    /// its JSON file `file`.
    func model(
        in directory: URL, editing file: String, _ edit: (inout [(key: String, value: JSONValue)]) throws -> Void
    ) throws -> URL {
        let model = directory.appendingPathComponent("hf")
        _ = try HFDirectoryWriter().write(TinyModel.graph(), to: model, options: WriteOptions())
        let url = model.appendingPathComponent(file)
        var fields = try JSONValue.parse(String(contentsOf: url, encoding: .utf8)).objectValue ?? []
        try edit(&fields)
        try Data(JSONValue.object(fields).serialized().utf8).write(to: url)
        return model
    }

    @Test("config.json's torch_dtype says what the matrices are stored in (transformers loads float32 without it)")
    func torchDType() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (dtype, name) in [(DType.f32, "float32"), (.bf16, "bfloat16"), (.f16, "float16")] {
            var graph = try TinyModel.graph()
            for tensor in graph.tensors where tensor.info.shape.rank == 2 {
                try graph.replace(TensorCodec.convert(tensor, to: dtype))
            }
            let model = directory.appendingPathComponent(name)
            _ = try HFDirectoryWriter().write(graph, to: model, options: WriteOptions())
            let config = try JSONValue.parse(
                String(contentsOf: model.appendingPathComponent("config.json"), encoding: .utf8))
            #expect(config["torch_dtype"] == .string(name))
        }
        // A config that spells it "dtype" (transformers 4.56 and later) keeps that spelling alone.
        let newer = try model(in: directory, editing: "config.json") { fields in
            fields.removeAll { $0.key == "torch_dtype" }
            fields.append(("dtype", .string("float32")))
        }
        let again = directory.appendingPathComponent("again")
        _ = try HFDirectoryWriter().write(
            HFDirectoryReader().read(newer, options: ReadOptions()), to: again, options: WriteOptions())
        let rewritten = try JSONValue.parse(
            String(contentsOf: again.appendingPathComponent("config.json"), encoding: .utf8))
        #expect(rewritten["dtype"] == .string("float32") && rewritten["torch_dtype"] == nil)
    }

    /// The tiny model as an HF directory whose config.json has `key` set to `value` (JSON text).
    func read(setting key: String, to value: String) throws -> String? {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model(in: directory, editing: "config.json") { fields in
            fields.removeAll { $0.key == key }
            fields.append((key, try JSONValue.parse(value)))
        }
        do {
            _ = try HFDirectoryReader().read(model, options: ReadOptions())
            return nil
        } catch {
            return (error as? any LocalizedError)?.errorDescription ?? "\(error)"
        }
    }

    @Test(
        "an optional field of the wrong type is an error naming it, not its default",
        arguments: [
            ("rope_theta", #""500000""#, "rope_theta: must be a finite number"),
            ("rms_norm_eps", #"{"v": 1}"#, "rms_norm_eps: must be a finite number"),
            ("tie_word_embeddings", #""false""#, "tie_word_embeddings: must be true or false"),
            ("model_type", "5", "model_type: must be a string"),
            ("hidden_act", "1", "hidden_act: must be a string"),
            ("rope_scaling", #""linear""#, "rope_scaling: must be an object"),
            ("rope_scaling", #"{"type": "linear", "factor": "2"}"#, "rope_scaling.factor: must be a finite number"),
        ])
    func wrongTypes(key: String, value: String, expected: String) throws {
        let message = try #require(try read(setting: key, to: value))
        #expect(message.contains("config.json") && message.contains(expected), "\(message)")
    }

    @Test("null or absent optional fields take their defaults")
    func defaults() throws {
        #expect(try read(setting: "rope_theta", to: "null") == nil)
        #expect(try read(setting: "rope_scaling", to: "null") == nil)
    }

    @Test(
        "the chat template comes from tokenizer_config.json, else chat_template.jinja or .json, else the weights' metadata"
    )
    func chatTemplateFiles() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let graph = try TinyModel.graph()
        let model = try model(in: directory, editing: "tokenizer_config.json") { fields in
            fields.removeAll { $0.key == "chat_template" }
        }
        func template() throws -> String? {
            try HFDirectoryReader().read(model, options: ReadOptions()).tokenizer?.chatTemplate
        }
        // The weights' metadata (a directory Lathe wrote) when no file has it.
        #expect(try template() == graph.tokenizer?.chatTemplate)
        try #"{"chat_template": "from json"}"#.write(
            to: model.appendingPathComponent("chat_template.json"), atomically: true, encoding: .utf8)
        #expect(try template() == "from json")
        try "from jinja".write(
            to: model.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        #expect(try template() == "from jinja")
    }

    @Test("a null rope_parameters leaves the top-level rope_theta in force")
    func nullRopeParameters() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try model(in: directory, editing: "config.json") { fields in
            fields.removeAll { ["rope_theta", "rope_parameters"].contains($0.key) }
            fields += [("rope_theta", .int(123_456)), ("rope_parameters", .null)]
        }
        #expect(try HFDirectoryReader().read(model, options: ReadOptions()).config?.ropeBase == 123_456)
    }
}

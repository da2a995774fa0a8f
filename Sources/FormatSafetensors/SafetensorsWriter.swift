import Foundation
import LatheCore

/// Writes safetensors byte-identical to the reference writer's conventions (formats.md §1.3): tensors
/// ordered by dtype alignment then name, compact JSON padded with spaces to a multiple of 8.
/// With the `max-shard-size` parameter (bytes) it writes a sharded checkpoint with an index instead.
public struct SafetensorsWriter: FormatWriter {
    public static let formatID = "safetensors"
    public static let fileExtension: String? = "safetensors"
    public static let parameterNames = ["max-shard-size"]

    public static func validate(parameters: [String: String]) throws(LatheError) {
        _ = try maxShardSize(parameters)
    }

    /// Shards go in a directory.
    public static func outputKind(parameters: [String: String]) -> AtomicOutput.Kind {
        parameters["max-shard-size"] == nil ? .file : .directory
    }

    /// The `max-shard-size` parameter in bytes, nil when absent (the HF directory writer reads it too).
    static func maxShardSize(_ parameters: [String: String]) throws(LatheError) -> Int? {
        guard let limit = parameters["max-shard-size"] else { return nil }
        guard let bytes = Int(limit), bytes > 0 else {
            throw .invalidValue(field: "max-shard-size", value: limit, expected: "a positive number of bytes")
        }
        return bytes
    }
    public static let summary = "safetensors (single file, or shards + index.json with max-shard-size=BYTES)"

    public init() {}

    public static func supports(_ dtype: DType) -> Bool { SafetensorsDType.name(dtype) != nil }

    public func write(_ graph: ModelGraph, to url: URL, options: WriteOptions) throws -> WriteReport {
        try Self.checkWritable(graph, path: url.path)
        let metadata = Self.headerMetadata(for: graph)
        if let bytes = try Self.maxShardSize(options.parameters) {
            let output = try AtomicOutput(
                destination: url, overwrite: options.overwrite, kind: Self.outputKind(parameters: options.parameters))
            return try output.run { temporary in
                try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
                var report = try Self.writeShards(
                    graph.tensors, metadata: metadata, maxBytes: bytes, into: temporary, options: options)
                report.path = url.path
                report.files = report.files.map {
                    url.appendingPathComponent(URL(fileURLWithPath: $0).lastPathComponent).path
                }
                return report
            }
        }
        let output = try AtomicOutput(destination: url, overwrite: options.overwrite)
        let written = try output.run { try Self.writeFile(graph.tensors, metadata: metadata, to: $0, options: options) }
        return WriteReport(path: url.path, files: [url.path], bytesWritten: written, tensorCount: graph.tensors.count)
    }

    /// Every tensor must be in HF layout and a dtype safetensors can hold.
    static func checkWritable(_ graph: ModelGraph, path: String) throws {
        guard graph.naming == .huggingface else {
            throw SafetensorsError(
                path: path, rule: .unsupported, field: "layout",
                problem: "the graph is in GGUF layout; read it with HF naming")
        }
        for tensor in graph.tensors where SafetensorsDType.name(tensor.info.dtype) == nil {
            throw SafetensorsError(
                path: path, rule: .unsupported, field: "tensor '\(tensor.name)'",
                problem: "safetensors cannot hold \(tensor.info.dtype); convert it with --type f32, f16 or bf16")
        }
    }

    /// `__metadata__`: the PyTorch marker, passthrough entries, and the typed metadata.
    static func headerMetadata(for graph: ModelGraph) -> [(String, String)] {
        var metadata = graph.metadata
        graph.config?.store(in: &metadata)
        graph.tokenizer?.store(in: &metadata)
        var typed = Metadata()
        var entries: [(String, String)] = [("format", "pt")]
        for (key, value) in metadata {
            if key.hasPrefix(SafetensorsReader.passthroughPrefix), let text = value.stringValue {
                entries.append((String(key.dropFirst(SafetensorsReader.passthroughPrefix.count)), text))
            } else {
                typed[key] = value
            }
        }
        if typed.count > 0 { entries.append((SafetensorsReader.metadataKey, typed.jsonValue().serialized())) }
        return entries.sorted { $0.0 < $1.0 }
    }

    /// Writes one complete safetensors file; returns its size.
    static func writeFile(_ tensors: [Tensor], metadata: [(String, String)], to url: URL, options: WriteOptions) throws
        -> Int
    {
        let ordered = tensors.sorted {
            let (a, b) = (SafetensorsDType.rank($0.info.dtype), SafetensorsDType.rank($1.info.dtype))
            return a != b ? a > b : Array($0.name.utf8).lexicographicallyPrecedes(Array($1.name.utf8))
        }
        var entries: [(key: String, value: JSONValue)] = []
        if !metadata.isEmpty { entries.append(("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))) }
        var offset = 0
        for tensor in ordered {
            let size = try tensor.info.byteCount()
            entries.append(
                (
                    tensor.name,
                    .object([
                        ("dtype", .string(SafetensorsDType.name(tensor.info.dtype) ?? "")),
                        ("shape", .array(tensor.info.shape.dimensions.map(JSONValue.int))),
                        ("data_offsets", .array([.int(offset), .int(offset + size)])),
                    ])
                ))
            offset += size
        }
        var header = Array(JSONValue.object(entries).serialized().utf8)
        header += [UInt8](repeating: 0x20, count: (8 - header.count % 8) % 8)
        guard header.count <= SafetensorsHeader.maxHeaderLength else {
            throw SafetensorsError(
                path: url.path, rule: .headerTooLarge, field: "header",
                problem: "\(header.count) bytes exceeds the 100,000,000-byte limit")
        }
        let writer = try BinaryWriter(creating: url)
        try writer.reserve(totalBytes: 8 + header.count + offset)
        try writer.write(UInt64(header.count))
        try writer.write(header)
        for (index, tensor) in ordered.enumerated() {
            try tensor.forEachChunk { try writer.write($0) }
            options.diagnostics.progress(.writing, fraction: Double(index + 1) / Double(ordered.count), tensor.name)
        }
        try writer.close()
        return writer.position
    }

    /// Splits tensors (in graph order) into shards of at most `maxBytes` of payload each, writes them
    /// as `model-0000k-of-0000n.safetensors` and the index into `directory`.
    static func writeShards(
        _ tensors: [Tensor], metadata: [(String, String)], maxBytes: Int, into directory: URL, options: WriteOptions
    ) throws -> WriteReport {
        var shards: [[Tensor]] = [[]]
        var current = 0
        for tensor in tensors {
            let size = try tensor.info.byteCount()
            if current > 0, current + size > maxBytes {
                shards.append([])
                current = 0
            }
            shards[shards.count - 1].append(tensor)
            current += size
        }
        var files: [String] = []
        var weightMap: [(key: String, value: JSONValue)] = []
        var total = 0
        var written = 0
        // The typed metadata (the whole tokenizer among it, about 2 MB for SmolLM2) goes in the first
        // shard only; the reader merges the shards' metadata, so the model reads back the same.
        let others = metadata.filter { $0.0 != SafetensorsReader.metadataKey }
        for (index, shard) in shards.enumerated() {
            let name = String(format: "model-%05d-of-%05d.safetensors", index + 1, shards.count)
            let url = directory.appendingPathComponent(name)
            written += try writeFile(shard, metadata: index == 0 ? metadata : others, to: url, options: options)
            files.append(url.path)
            for tensor in shard {
                weightMap.append((tensor.name, .string(name)))
                total += try tensor.info.byteCount()
            }
        }
        let index = JSONValue.object([
            ("metadata", .object([("total_size", .int(total))])), ("weight_map", .object(weightMap)),
        ])
        let indexURL = directory.appendingPathComponent("model.safetensors.index.json")
        try Data(index.serialized().utf8).write(to: indexURL)
        files.append(indexURL.path)
        return WriteReport(path: directory.path, files: files, bytesWritten: written, tensorCount: tensors.count)
    }
}

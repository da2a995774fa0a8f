import Foundation
import LatheCore

/// Reads safetensors: a single file, a sharded checkpoint's `model.safetensors.index.json`, or a
/// directory holding either. Tensors are mapped, not copied.
public struct SafetensorsReader: FormatReader {
    public static let formatID = "safetensors"
    public static let summary = "safetensors files and sharded checkpoints (index.json); every dtype with a byte size"

    /// The `__metadata__` key under which Lathe keeps the typed model metadata.
    static let metadataKey = "lathe.metadata"
    /// Other `__metadata__` entries live in the graph under this prefix.
    static let passthroughPrefix = "lathe.safetensors."

    public init() {}

    public static func sniff(_ url: URL, prefix: [UInt8]) -> Bool {
        let name = url.lastPathComponent
        if name.hasSuffix(".safetensors") || name.hasSuffix(".safetensors.index.json") { return true }
        // A directory of shards and their index (what `--max-shard-size` writes); one with a
        // config.json is an HF directory, the hf reader's.
        let fileManager = FileManager.default
        if url.hasDirectoryPath || (try? url.resourceValues(forKeys: [.isDirectoryKey]).isDirectory) == true {
            return !fileManager.fileExists(atPath: url.appendingPathComponent("config.json").path)
                && (fileManager.fileExists(atPath: url.appendingPathComponent("model.safetensors.index.json").path)
                    || fileManager.fileExists(atPath: url.appendingPathComponent("model.safetensors").path))
        }
        // An 8-byte length followed by the JSON object's opening brace (or padding whitespace).
        guard prefix.count > 8 else { return false }
        return [UInt8(ascii: "{"), 0x20].contains(prefix[8]) && prefix[4..<8].allSatisfy { $0 == 0 }
    }

    public func read(_ url: URL, options: ReadOptions) throws -> ModelGraph {
        var graph = try ModelGraph(source: url.path)
        graph.sourceFormat = Self.formatID
        try Self.appendShards(for: url, to: &graph, diagnostics: options.diagnostics)
        graph.config = try LlamaConfig(metadata: graph.metadata, source: url.path)
        graph.tokenizer = try TokenizerDescription(metadata: graph.metadata, source: url.path)
        let tied = graph[LlamaTensorNames.head] == nil
        graph.config?.tiedEmbeddings = tied
        options.diagnostics.info("\(url.lastPathComponent): safetensors, \(graph.tensors.count) tensors")
        return graph
    }

    /// Appends the tensors of `url` (a file, an index, or a directory holding either) and returns the
    /// files read. A sharded checkpoint's files must hold exactly what its index maps to them: a mapped
    /// tensor missing from its shard, or a shard's tensor the index does not map there, is an error.
    @discardableResult
    static func appendShards(for url: URL, to graph: inout ModelGraph, diagnostics: Diagnostics) throws -> [URL] {
        let (files, index) = try shardFiles(for: url, diagnostics: diagnostics)
        for file in files {
            let before = graph.tensors.count
            try appendFile(file, to: &graph)
            guard let (indexURL, weightMap) = index else { continue }
            // The file's tensors are the ones just appended.
            for name in graph.tensorNames.dropFirst(before) where weightMap[name] != file.lastPathComponent {
                throw SafetensorsError(
                    path: indexURL.path, rule: .invalidIndex, field: "weight_map.\(name)",
                    problem: weightMap[name].map { "maps the tensor to \($0), but \(file.lastPathComponent) holds it" }
                        ?? "missing: \(file.lastPathComponent) holds a tensor the index does not map")
            }
        }
        if let (indexURL, weightMap) = index {
            let loaded = Set(graph.tensorNames)
            for (name, file) in weightMap.sorted(by: { $0.key < $1.key }) where !loaded.contains(name) {
                throw SafetensorsError(
                    path: indexURL.path, rule: .invalidIndex, field: "weight_map.\(name)",
                    problem: "\(file) holds no such tensor")
            }
        }
        return files
    }

    /// The files to read for `url`: itself, or the shards an index names, with the index's path and
    /// weight map.
    private static func shardFiles(for url: URL, diagnostics: Diagnostics) throws -> (
        files: [URL], index: (URL, [String: String])?
    ) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw LatheError.fileAccess(path: url.path, reason: "no such file or directory")
        }
        if isDirectory.boolValue {
            let index = url.appendingPathComponent("model.safetensors.index.json")
            let single = url.appendingPathComponent("model.safetensors")
            let hasIndex = FileManager.default.fileExists(atPath: index.path)
            // Both: transformers loads model.safetensors, so the same directory gives the same weights here.
            if FileManager.default.fileExists(atPath: single.path) {
                if hasIndex {
                    diagnostics.warning(
                        "\(url.path) holds both model.safetensors and model.safetensors.index.json; reading "
                            + "model.safetensors, as transformers does (the index's shards are left out)")
                }
                return ([single], nil)
            }
            if hasIndex { return try shardFiles(for: index, diagnostics: diagnostics) }
            throw LatheError.fileAccess(
                path: url.path, reason: "holds neither model.safetensors nor model.safetensors.index.json")
        }
        guard url.lastPathComponent.hasSuffix(".index.json") else { return ([url], nil) }
        let data = try MappedFile.bytes(url)
        let json: JSONValue
        do {
            json = try data.withUnsafeBytes { raw in
                try Result { () throws(JSONParseError) in try JSONValue.parse(raw) }.get()
            }
        } catch let error as JSONParseError {
            throw SafetensorsError(
                path: url.path, rule: .invalidIndex, field: "byte \(error.offset)", problem: error.reason)
        }
        guard let weightMap = json["weight_map"]?.objectValue else {
            throw SafetensorsError(
                path: url.path, rule: .invalidIndex, field: "weight_map", problem: "missing or not an object")
        }
        guard !weightMap.isEmpty else {
            throw SafetensorsError(
                path: url.path, rule: .invalidIndex, field: "weight_map", problem: "names no tensors")
        }
        var mapped: [String: String] = [:]
        for (name, file) in weightMap {
            guard let file = file.stringValue, !file.contains("/"), !file.isEmpty, file != ".", file != ".." else {
                throw SafetensorsError(
                    path: url.path, rule: .invalidIndex, field: "weight_map.\(name)",
                    problem: "must name a shard file in the same directory")
            }
            mapped[name] = file
        }
        let shards = Set(mapped.values).sorted().map { url.deletingLastPathComponent().appendingPathComponent($0) }
        return (shards, (url, mapped))
    }

    /// Maps one file and appends its tensors (in data order) and metadata to `graph`.
    static func appendFile(_ url: URL, to graph: inout ModelGraph) throws {
        let file = try MappedFile(path: url.path)
        let header = try file.withBytes { bytes throws(SafetensorsError) in try SafetensorsHeader(bytes, path: url.path)
        }
        for (key, value) in header.metadata {
            if key == metadataKey {
                let json: JSONValue
                do { json = try JSONValue.parse(value) } catch {
                    throw SafetensorsError(
                        path: url.path, rule: .invalidHeaderDeserialization, field: "__metadata__.\(key)",
                        problem: error.reason)
                }
                for (metaKey, metaValue) in try Metadata(json: json, field: "\(url.path): __metadata__.\(key)") {
                    graph.metadata[metaKey] = metaValue
                }
            } else if !(key == "format" && value == "pt") {
                graph.metadata[passthroughPrefix + key] = .string(value)
            }
        }
        for entry in header.entries.sorted(by: { $0.begin < $1.begin }) {
            let info = TensorInfo(name: entry.name, dtype: entry.dtype, shape: Shape(entry.shape))
            let storage = try TensorStorage(
                file: file, offset: header.dataStart + entry.begin, length: entry.end - entry.begin)
            do { try graph.append(Tensor(info: info, storage: storage)) } catch {
                throw SafetensorsError(
                    path: url.path, rule: .duplicateKey, field: "tensor '\(entry.name)'",
                    problem: "appears in more than one shard")
            }
        }
    }
}

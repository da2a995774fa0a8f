import Foundation
import LatheCore

/// Metadata keys under which an HF directory's own JSON files travel through other formats, so
/// HF → GGUF → HF gives back every field, not only the ones Lathe maps.
enum HFKeys {
    static let config = "lathe.hf.config_json"
    static let tokenizerConfig = "lathe.hf.tokenizer_config_json"
    static let generationConfig = "lathe.hf.generation_config_json"
    /// GGUF's own (optional) key for the whole tokenizer.json.
    static let tokenizer = "tokenizer.huggingface.json"
}

/// Reads a Hugging Face model directory: `config.json`, the tokenizer files, `generation_config.json`
/// and the safetensors weights (single or sharded).
public struct HFDirectoryReader: FormatReader {
    public static let formatID = "hf"
    public static let summary =
        "Hugging Face directory: config.json, tokenizer.json, safetensors weights (sharded or not)"

    public init() {}

    public static func sniff(_ url: URL, prefix: [UInt8]) -> Bool {
        FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path)
    }

    public func read(_ url: URL, options: ReadOptions) throws -> ModelGraph {
        var graph = try ModelGraph(source: url.path)
        graph.sourceFormat = Self.formatID
        let shardFiles = try SafetensorsReader.appendShards(for: url, to: &graph, diagnostics: options.diagnostics)
        for name in graph.tensorNames where name.hasSuffix(".rotary_emb.inv_freq") { try graph.remove(name) }

        let configText = try Self.text(url, "config.json")!
        let configJSON = try Self.parse(configText, url, "config.json")
        var config = try HFConfig.llamaConfig(from: configJSON, path: url.appendingPathComponent("config.json").path)
        config.tiedEmbeddings = config.tiedEmbeddings || graph[LlamaTensorNames.head] == nil
        graph.metadata[HFKeys.config] = .string(configText)

        var tokenizerConfig: JSONValue?
        if let text = try Self.text(url, "tokenizer_config.json") {
            tokenizerConfig = try Self.parse(text, url, "tokenizer_config.json")
            graph.metadata[HFKeys.tokenizerConfig] = .string(text)
        }
        if let text = try Self.text(url, "generation_config.json") {
            _ = try Self.parse(text, url, "generation_config.json")
            graph.metadata[HFKeys.generationConfig] = .string(text)
        }
        if let text = try Self.text(url, "tokenizer.json") {
            let json = try Self.parse(text, url, "tokenizer.json")
            graph.metadata[HFKeys.tokenizer] = .string(text)
            var tokenizer: TokenizerDescription
            do {
                tokenizer = try HFTokenizer.description(
                    tokenizer: json, config: tokenizerConfig, path: url.appendingPathComponent("tokenizer.json").path,
                    diagnostics: options.diagnostics)
            } catch let error as SafetensorsError where error.rule == .unsupported {
                // The weights are still readable; the file's own tokenizer.json travels along untouched.
                options.diagnostics.warning("\(error.localizedDescription); the model is read without a tokenizer")
                return try finish(graph, config: config, url: url, shards: shardFiles.count, options: options)
            }
            // config.json's ids fill in only when they name a token; `eos_token_id` may be a list
            // (Llama 3 Instruct), whose first entry GGUF's single key keeps.
            let vocabulary = 0..<tokenizer.tokens.count
            func configTokenID(_ key: String) -> Int? {
                let value = configJSON[key]
                return (value?.intValue ?? value?.arrayValue?.first?.intValue).flatMap { vocabulary ~= $0 ? $0 : nil }
            }
            tokenizer.bosTokenID = tokenizer.bosTokenID ?? configTokenID("bos_token_id")
            tokenizer.eosTokenID = tokenizer.eosTokenID ?? configTokenID("eos_token_id")
            // transformers now saves the template in a file of its own (chat_template.jinja, before
            // that chat_template.json); a directory Lathe wrote also keeps it in the weights' metadata.
            if tokenizer.chatTemplate == nil {
                tokenizer.chatTemplate =
                    try Self.text(url, "chat_template.jinja")
                    ?? Self.text(url, "chat_template.json").flatMap {
                        try Self.parse($0, url, "chat_template.json")["chat_template"]?.stringValue
                    } ?? graph.metadata["tokenizer.chat_template"]?.stringValue
            }
            graph.tokenizer = tokenizer
        }
        return try finish(graph, config: config, url: url, shards: shardFiles.count, options: options)
    }

    /// The config and tokenizer stored in the graph's metadata, as every reader leaves them.
    private func finish(_ graph: ModelGraph, config: LlamaConfig, url: URL, shards: Int, options: ReadOptions) throws
        -> ModelGraph
    {
        var graph = graph
        graph.config = config
        if graph.metadata["general.architecture"] == nil { graph.metadata["general.architecture"] = .string("llama") }
        config.store(in: &graph.metadata)
        graph.tokenizer?.store(in: &graph.metadata)
        options.diagnostics.info(
            "\(url.lastPathComponent): HF directory, \(shards) weight file(s), \(graph.tensors.count) tensors")
        return graph
    }

    static func text(_ directory: URL, _ name: String) throws -> String? {
        let url = directory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            if name == "config.json" {
                throw SafetensorsError(path: url.path, rule: .invalidConfig, field: "config.json", problem: "missing")
            }
            return nil
        }
        guard let text = try MappedFile.text(url) else {
            throw SafetensorsError(path: url.path, rule: .invalidConfig, field: name, problem: "not valid UTF-8")
        }
        return text
    }

    static func parse(_ text: String, _ directory: URL, _ name: String) throws -> JSONValue {
        do { return try JSONValue.parse(text) } catch {
            throw SafetensorsError(
                path: directory.appendingPathComponent(name).path, rule: .invalidConfig, field: "byte \(error.offset)",
                problem: error.reason)
        }
    }
}

/// Writes a Hugging Face model directory, published atomically (written beside the destination and
/// renamed into place). `max-shard-size=BYTES` shards the weights.
public struct HFDirectoryWriter: FormatWriter {
    public static let formatID = "hf"
    public static let parameterNames = ["max-shard-size"]

    public static func validate(parameters: [String: String]) throws(LatheError) {
        _ = try SafetensorsWriter.maxShardSize(parameters)
    }
    public static func outputKind(parameters: [String: String]) -> AtomicOutput.Kind { .directory }
    public static let summary = "Hugging Face directory: config.json, tokenizer files, model.safetensors (or shards)"

    public init() {}

    public static func supports(_ dtype: DType) -> Bool { SafetensorsDType.name(dtype) != nil }

    public func write(_ graph: ModelGraph, to url: URL, options: WriteOptions) throws -> WriteReport {
        try SafetensorsWriter.checkWritable(graph, path: url.path)
        guard let config = graph.config else {
            throw SafetensorsError(
                path: url.path, rule: .invalidConfig, field: "config",
                problem: "the model has no Llama config to write as config.json")
        }
        // llama.cpp's converter keeps Llama 3's RoPE scaling only as this tensor; without the
        // parameters (Lathe's keys) config.json cannot say it, and the model would run unscaled.
        if graph[LlamaConfig.RopeScaling.frequencyTensor] != nil {
            throw SafetensorsError(
                path: url.path, rule: .unsupported, field: "tensor '\(LlamaConfig.RopeScaling.frequencyTensor)'",
                problem:
                    "RoPE frequency factors without the rope_scaling parameters have no config.json form; write GGUF or safetensors"
            )
        }
        let metadata = SafetensorsWriter.headerMetadata(for: graph)
        let maxShard = try SafetensorsWriter.maxShardSize(options.parameters)
        let output = try AtomicOutput(
            destination: url, overwrite: options.overwrite, kind: Self.outputKind(parameters: options.parameters))
        return try output.run { directory in
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            func raw(_ key: String) -> String? { graph.metadata[key]?.stringValue }
            func write(_ name: String, _ text: String) throws {
                try Data(text.utf8).write(to: directory.appendingPathComponent(name))
            }
            var original: JSONValue?
            if let text = raw(HFKeys.config) {
                do throws(JSONParseError) { original = try JSONValue.parse(text) } catch {
                    throw LatheError.problem(
                        "\(graph.source): metadata \(HFKeys.config)",
                        reason: "not JSON (\(error.reason) at byte \(error.offset))")
                }
            }
            try write(
                "config.json",
                HFConfig.json(
                    for: config, original: original, tokenizer: graph.tokenizer, torchDType: HFConfig.torchDType(graph)
                ).serialized())
            if let tokenizer = graph.tokenizer {
                try write("tokenizer.json", raw(HFKeys.tokenizer) ?? HFTokenizer.tokenizerJSON(tokenizer).serialized())
                try write(
                    "tokenizer_config.json",
                    raw(HFKeys.tokenizerConfig) ?? HFTokenizer.configJSON(tokenizer).serialized())
            }
            var generation: [(key: String, value: JSONValue)] = []
            if let bos = graph.tokenizer?.bosTokenID { generation.append(("bos_token_id", .int(bos))) }
            if let eos = graph.tokenizer?.eosTokenID { generation.append(("eos_token_id", .int(eos))) }
            try write(
                "generation_config.json", raw(HFKeys.generationConfig) ?? JSONValue.object(generation).serialized())
            var report: WriteReport
            if let maxShard {
                report = try SafetensorsWriter.writeShards(
                    graph.tensors, metadata: metadata, maxBytes: maxShard, into: directory, options: options)
            } else {
                let file = directory.appendingPathComponent("model.safetensors")
                let bytes = try SafetensorsWriter.writeFile(
                    graph.tensors, metadata: metadata, to: file, options: options)
                report = WriteReport(
                    path: directory.path, files: [file.path], bytesWritten: bytes, tensorCount: graph.tensors.count)
            }
            report.path = url.path
            report.files = report.files.map {
                url.appendingPathComponent(URL(fileURLWithPath: $0).lastPathComponent).path
            }
            return report
        }
    }
}

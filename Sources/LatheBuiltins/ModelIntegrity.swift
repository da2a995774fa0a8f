import Compression
import FormatPacked
import Foundation
import LatheCore

/// What `lathe check` found: the structure read, stored checksums verified where the format has
/// them, and (when asked) every value decoded and counted if not finite.
public struct IntegrityReport: Sendable, Equatable {
    public var path: String
    public var format: String
    public var tensors: Int
    /// Members whose stored checksum was verified (lpack); 0 for formats without checksums.
    public var checksummed: Int
    public var checkedBytes: Int
    /// Non-finite values per tensor, when values were decoded.
    public var nonFinite: [String: Int]
}

public enum ModelIntegrity {
    /// Reads `url` (every header rule of its format; `format` forces a reader), verifies an lpack
    /// file's checksums, compressed members, padding and end (`PackedReader.verify`), and with `values`
    /// decodes every tensor. Throws on the first damage, naming the file and tensor.
    public static func check(
        _ url: URL, format: String? = nil, values: Bool, registry: Registry = LatheBuiltins.registry
    ) throws -> IntegrityReport {
        if ArchiveFormat(fileName: url.lastPathComponent) != nil {
            // The model inside, checked in full (an lpack's own checks need the file itself).
            return try ModelInput.withExtractedModel(url, registry: registry) { model, name in
                var report = try check(model, format: format, values: values, registry: registry)
                report.path = name
                return report
            }
        }
        let graph = try ModelInput.open(url, format: format, registry: registry)
        // What the runtime and the passes would refuse is damage too: the config's sizes, and the
        // quantization and online-transform records a quantized model carries. Only for the Llama
        // family they run: another architecture's file (Mamba has no heads) is a container here.
        if graph.config?.architecture == "llama" {
            let config = try graph.llamaConfig()
            do {
                try QuantizationScheme(metadata: graph.metadata).validate(for: config)
                _ = try OnlineTransforms(metadata: graph.metadata)
                _ = try SubspaceLayout(metadata: graph.metadata)
            } catch { throw LatheError.problem(url.path, reason: error.errorDescription ?? "\(error)") }
            try checkAgainstTensors(graph, config, path: url.path)
        }
        var report = IntegrityReport(
            path: url.path, format: graph.sourceFormat, tensors: graph.tensors.count, checksummed: 0, checkedBytes: 0,
            nonFinite: [:])
        if graph.sourceFormat == PackedReader.formatID {
            let verified = try PackedReader.verify(url)
            report.checksummed = verified.tensors
            report.checkedBytes = verified.bytes
        }
        guard values else { return report }
        for tensor in graph.tensors where TensorCodec.canDecode(tensor.info.dtype) {
            let decoded = try TensorCodec.decode(tensor)
            let bad = decoded.reduce(0) { $0 + ($1.isFinite ? 0 : 1) }
            if bad > 0 { report.nonFinite[tensor.name] = bad }
        }
        return report
    }

    /// The config against the tensors, as the runtime will meet them: layers 0 ..< layerCount each
    /// have tensors and none lies beyond, and the embedding is vocab × hidden. (A file with no layer
    /// tensors, such as calibration statistics, is not a model to check this way.)
    static func checkAgainstTensors(_ graph: ModelGraph, _ config: LlamaConfig, path: String) throws {
        let layers = Set(graph.tensorNames.compactMap(LlamaTensorNames.layer(of:)))
        if !layers.isEmpty, layers != Set(0..<config.layerCount) {
            let missing = (0..<config.layerCount).filter { !layers.contains($0) }
            let extra = layers.filter { $0 >= config.layerCount }.sorted()
            throw LatheError.problem(
                path,
                reason: "the config names \(config.layerCount) layers, but "
                    + (missing.isEmpty
                        ? "tensors exist for layer \(extra[0])"
                            + (extra.count > 1 ? " and \(extra.count - 1) more" : "")
                        : "layer \(missing[0]) has no tensors"
                            + (missing.count > 1 ? " (nor \(missing.count - 1) more)" : "")))
        }
        guard let embedding = graph[LlamaTensorNames.embedding] ?? graph["token_embd.weight"] else { return }
        if embedding.info.shape.dimensions != [config.vocabSize, config.hiddenSize] {
            throw LatheError.problem(
                path,
                reason: "tensor '\(embedding.name)' is \(embedding.info.shape), but the config's vocabulary and "
                    + "hidden size make [\(config.vocabSize), \(config.hiddenSize)]")
        }
        // Tokens past the embedding's rows (added to tokenizer.json without resizing the model) have
        // no vector: the runtime fails only when one comes up, and llama.cpp refuses the file.
        if let tokens = graph.tokenizer?.tokens.count, tokens > config.vocabSize {
            throw LatheError.problem(
                path,
                reason: "the tokenizer has \(tokens) tokens, but tensor '\(embedding.name)' has \(config.vocabSize) "
                    + "rows: ids \(config.vocabSize) and up have no embedding")
        }
    }
}

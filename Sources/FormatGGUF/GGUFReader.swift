import Foundation
import LatheCore

/// Reads GGUF v2/v3 files: metadata of all 13 types, tensor infos validated as ggml does, and tensor
/// payloads mapped from the file without copying.
public struct GGUFReader: FormatReader {
    public static let formatID = "gguf"
    public static let summary = "GGUF v2/v3 (llama.cpp): every metadata type; F32/F16/BF16, Q4_0…Q8_1, Q2_K…Q8_K"

    public init() {}

    public static func sniff(_ url: URL, prefix: [UInt8]) -> Bool { prefix.starts(with: Array("GGUF".utf8)) }

    public func read(_ url: URL, options: ReadOptions) throws -> ModelGraph {
        let file = try MappedFile(path: url.path)
        let header = try file.withBytes { bytes throws(GGUFError) in try GGUFHeader(bytes, path: url.path) }
        var graph = try ModelGraph(source: url.path, metadata: header.metadata)
        graph.sourceFormat = Self.formatID
        graph.naming = .gguf
        graph.config = try LlamaConfig(metadata: header.metadata, source: url.path)
        graph.tokenizer = try TokenizerDescription(metadata: header.metadata, source: url.path)
        if graph.config != nil {
            graph.config?.tiedEmbeddings = !header.tensors.contains { $0.name == "output.weight" }
        }
        for record in header.tensors {
            let info = TensorInfo(name: record.name, dtype: record.dtype, shape: Shape(record.ne.reversed()))
            let storage = try TensorStorage(
                file: file, offset: header.dataStart + record.offset, length: record.byteCount)
            if case .quantized = info.dtype {
                let scales = CheckedOnce()
                try graph.append(
                    Tensor(info: info) {
                        try scales.run { try ScaleCheck.check(storage, info, path: url.path) }
                        return storage
                    })
            } else {
                try graph.append(Tensor(info: info, storage: storage))
            }
        }
        options.diagnostics.info(
            "\(url.lastPathComponent): GGUF v\(header.version), \(header.tensors.count) tensors, \(header.metadata.count) keys"
        )
        return options.naming == .huggingface ? try LlamaLayout.toHuggingFace(graph) : graph
    }
}

/// Converting whole graphs between the GGUF and canonical (HF) layouts.
public enum LlamaLayout {
    /// GGUF names and q/k row order → HF names and rotate-half order.
    public static func toHuggingFace(_ graph: ModelGraph) throws -> ModelGraph {
        try convert(graph, to: .huggingface)
    }

    /// HF names and rotate-half q/k order → GGUF's.
    public static func toGGUF(_ graph: ModelGraph) throws -> ModelGraph {
        try convert(graph, to: .gguf)
    }

    private static func convert(_ graph: ModelGraph, to naming: TensorNaming) throws -> ModelGraph {
        guard graph.naming != naming else { return graph }
        var result = graph
        result.naming = naming
        let permute = graph.config.map { $0.architecture == "llama" } ?? false
        for tensor in graph.tensors {
            let hfName = naming == .huggingface ? LlamaTensorNames.hf(fromGGUF: tensor.name) : tensor.name
            let newName = naming == .huggingface ? hfName : LlamaTensorNames.gguf(fromHF: tensor.name)
            var converted = tensor
            converted.info.name = newName
            if permute, let config = graph.config,
                let heads = LlamaTensorNames.permutedHeads(hfName: hfName, config: config)
            {
                let rows = tensor.info.shape.dimensions.first ?? 0
                guard heads > 0, rows % heads == 0, (rows / heads) % 2 == 0 else {
                    throw LatheError.problem(
                        graph.source,
                        reason: "tensor '\(tensor.name)': \(rows) rows do not split into \(heads) heads of even size "
                            + "(shape \(tensor.info.shape); check the head counts in the config)")
                }
                let order = LlamaTensorNames.rowPermutation(rows: rows, heads: heads, toGGUF: naming == .gguf)
                converted = LlamaTensorNames.permuteRows(tensor, permutation: order, renamedTo: newName)
            }
            try result.replace(tensor.name, with: converted)
        }
        // llama3 RoPE scaling: llama.cpp reads its divisors from a tensor; HF derives them from config.json.
        let frequencyTensor = LlamaConfig.RopeScaling.frequencyTensor
        if let config = graph.config,
            let divisors = config.ropeScaling?.frequencyDivisors(headDim: config.headDim, base: config.ropeBase)
        {
            if naming == .gguf, result[frequencyTensor] == nil {
                try result.append(
                    Tensor(
                        info: TensorInfo(name: frequencyTensor, dtype: .f32, shape: [divisors.count]),
                        storage: TensorStorage(values: divisors.map { Float($0) })))
            } else if naming == .huggingface, result[frequencyTensor] != nil {
                try result.remove(frequencyTensor)
            }
        }
        return result
    }
}

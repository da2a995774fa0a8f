import Foundation
import LatheCore

/// Writes GGUF v3 the way llama.cpp expects: key types as gguf-py writes them, tensor data in
/// info order with alignment padding, published atomically.
public struct GGUFWriter: FormatWriter {
    public static let formatID = "gguf"
    public static let fileExtension: String? = "gguf"
    public static let parameterNames = ["alignment"]

    public static func validate(parameters: [String: String]) throws(LatheError) {
        if let text = parameters["alignment"] { _ = try alignment(text) }
    }
    public static let summary = "GGUF v3 for llama.cpp; HF names and q/k order converted back to llama.cpp's"

    public init() {}

    public static func supports(_ dtype: DType) -> Bool { GGMLTypeID.id(dtype) != nil }

    /// ggml's CPU multiply takes an F32 activation only with an F32 (or like-typed) vector, so a
    /// BF16 norm weight aborts llama.cpp; its converter stores every vector as F32. Widening is exact.
    public static func preferredType(for info: TensorInfo) -> DType? {
        info.shape.rank == 1 && (info.dtype == .f16 || info.dtype == .bf16) ? .f32 : nil
    }

    public func write(_ graph: ModelGraph, to url: URL, options: WriteOptions) throws -> WriteReport {
        let graph = try LlamaLayout.toGGUF(graph)
        let alignment = try Self.alignment(options, graph: graph)
        let metadata = try Self.metadata(for: graph, alignment: alignment, path: url.path)
        let records = try graph.tensors.map { tensor throws -> (Tensor, UInt32, Int) in
            let field = "tensor '\(tensor.name)'"
            guard let id = GGMLTypeID.id(tensor.info.dtype) else {
                throw GGUFError(
                    path: url.path, field: field,
                    problem: "\(tensor.info.dtype) has no GGUF type; convert it with --type")
            }
            guard tensor.name.utf8.count <= GGUFHeader.maxNameLength else {
                throw GGUFError(path: url.path, field: field, problem: "name is longer than GGUF's 63 bytes")
            }
            guard tensor.info.shape.rank <= 4 else {
                throw GGUFError(
                    path: url.path, field: field, problem: "\(tensor.info.shape.rank) dimensions; GGUF allows 4")
            }
            return (tensor, id, try tensor.info.byteCount())
        }

        let output = try AtomicOutput(destination: url, overwrite: options.overwrite)
        let written = try output.run { temporary in
            let writer = try BinaryWriter(creating: temporary)
            try writer.write(UInt32(0x4655_4747))
            try writer.write(UInt32(3))
            try writer.write(UInt64(records.count))
            try writer.write(UInt64(metadata.count))
            for (key, value) in metadata {
                try Self.writeString(key, to: writer)
                try writer.write(value.type.rawValue)
                try Self.writeValue(value, to: writer)
            }
            var offset = 0
            for (tensor, id, byteCount) in records {
                try Self.writeString(tensor.name, to: writer)
                let ne = tensor.info.shape.dimensions.reversed()
                try writer.write(UInt32(ne.count))
                for dimension in ne { try writer.write(UInt64(dimension)) }
                try writer.write(id)
                try writer.write(UInt64(offset))
                offset += (byteCount + alignment - 1) / alignment * alignment
            }
            try writer.pad(to: alignment)
            try writer.reserve(totalBytes: writer.position + offset)
            for (index, (tensor, _, _)) in records.enumerated() {
                try tensor.forEachChunk { try writer.write($0) }
                try writer.pad(to: alignment)
                options.diagnostics.progress(
                    .writing, fraction: Double(index + 1) / Double(records.count),
                    "\(tensor.name) (\(tensor.info.dtype))")
            }
            try writer.close()
            return writer.position
        }
        return WriteReport(path: url.path, files: [url.path], bytesWritten: written, tensorCount: records.count)
    }

    /// The `alignment` parameter, else the source GGUF's `general.alignment` when this writer can use
    /// it (a power of two of at least 8: GGUF → GGUF keeps its layout), else 32.
    private static func alignment(_ options: WriteOptions, graph: ModelGraph) throws -> Int {
        let source = graph.sourceFormat == GGUFReader.formatID ? graph.metadata["general.alignment"]?.intValue : nil
        guard let text = options.parameters["alignment"] ?? source.flatMap({ $0 >= 8 ? String($0) : nil }) else {
            return GGUFHeader.defaultAlignment
        }
        return try alignment(text)
    }

    /// An alignment parameter: a power of two of at least 8.
    private static func alignment(_ text: String) throws(LatheError) -> Int {
        guard let value = Int(text), value >= 8, value & (value - 1) == 0 else {
            throw .invalidValue(field: "alignment", value: text, expected: "a power of two of at least 8")
        }
        return value
    }

    /// The graph's metadata with the typed config and tokenizer re-stored (a pass may have changed
    /// them) and the file type recomputed.
    static func metadata(for graph: ModelGraph, alignment: Int, path: String) throws -> Metadata {
        var metadata = Metadata()
        for (key, value) in graph.metadata {
            if case .array(.array, _) = value {
                throw GGUFError(path: path, field: "key '\(key)'", problem: "nested arrays cannot be written to GGUF")
            }
            metadata[key] = value
        }
        graph.config?.store(in: &metadata)
        if var tokenizer = graph.tokenizer {
            try fitVocabulary(&tokenizer, metadata: &metadata, to: graph, path: path)
            tokenizer.store(in: &metadata)
        }
        if let majority = graph.majorityMatrixEncoding, let fileType = GGMLTypeID.fileType(majority) {
            metadata["general.file_type"] = .uint32(fileType)
        }
        if graph.tensors.contains(where: { if case .quantized = $0.info.dtype { true } else { false } }) {
            metadata["general.quantization_version"] = .uint32(2)
        }
        metadata["general.alignment"] = alignment == GGUFHeader.defaultAlignment ? nil : .uint32(UInt32(alignment))
        return metadata
    }

    static let embedding = LlamaTensorNames.gguf(fromHF: LlamaTensorNames.embedding)

    /// llama.cpp sizes the embedding from the token list. A list longer than the embedding's rows is
    /// refused (ids past the rows have no vector; llama.cpp's converter refuses it too), and a shorter
    /// one is padded with unused `[PADn]` tokens, as that converter pads a vocabulary smaller than the
    /// matrix (HF models often round the matrix up).
    static func fitVocabulary(
        _ tokenizer: inout TokenizerDescription, metadata: inout Metadata, to graph: ModelGraph, path: String
    ) throws {
        guard let rows = graph[Self.embedding]?.info.shape.dimensions.first else { return }
        let count = tokenizer.tokens.count
        guard count <= rows else {
            throw GGUFError(
                path: path, field: "tokenizer.ggml.tokens",
                problem:
                    "\(count) tokens, but tensor '\(Self.embedding)' has \(rows) rows: ids \(rows) and up "
                    + "would have no embedding (llama.cpp refuses such a file)")
        }
        let added = tokenizer.pad(toCount: rows)
        // Per-token scores, where a SentencePiece vocabulary has them, get llama.cpp's converter's
        // -1000 for each pad.
        if added > 0, case .array(let element, let scores) = metadata["tokenizer.ggml.scores"], scores.count == count {
            let pad: MetadataValue = element == .float64 ? .float64(-1000) : .float32(-1000)
            metadata["tokenizer.ggml.scores"] = .array(element, scores + Array(repeating: pad, count: added))
        }
    }

    private static func writeString(_ string: String, to writer: BinaryWriter) throws {
        let bytes = Array(string.utf8)
        try writer.write(UInt64(bytes.count))
        try writer.write(bytes)
    }

    private static func writeValue(_ value: MetadataValue, to writer: BinaryWriter) throws {
        switch value {
        case .uint8(let v): try writer.write(v)
        case .int8(let v): try writer.write(v)
        case .uint16(let v): try writer.write(v)
        case .int16(let v): try writer.write(v)
        case .uint32(let v): try writer.write(v)
        case .int32(let v): try writer.write(v)
        case .uint64(let v): try writer.write(v)
        case .int64(let v): try writer.write(v)
        case .float32(let v): try writer.write(v.bitPattern)
        case .float64(let v): try writer.write(v.bitPattern)
        case .bool(let v): try writer.write(UInt8(v ? 1 : 0))
        case .string(let s): try writeString(s, to: writer)
        case .array(let type, let values):
            try writer.write(type.rawValue)
            try writer.write(UInt64(values.count))
            for element in values { try writeValue(element, to: writer) }
        }
    }
}

import LatheCore

/// `quantize-ggml`: encodes matrices in a ggml block type (byte-identical to llama.cpp's reference
/// quantizers), with per-pattern overrides, exactly as `lathe convert --type/--tensor-type` does.
public struct QuantizeGGMLPass: ModelPass {
    public struct Override: Codable, Sendable {
        public var pattern: String
        public var type: String
    }

    public struct Options: Codable, Sendable {
        /// The encoding for selected tensors: q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q6_k (or a float type).
        public var type: String
        /// Regex over tensor names; all tensors of at least `minRank` when absent.
        public var tensors: String?
        /// Only tensors of at least this rank (default 2: matrices; norms stay as they are).
        public var minRank: Int?
        /// First matching override wins over `type` (any rank).
        public var overrides: [Override]?
    }

    public static let passID = "quantize-ggml"
    public static let summary =
        "encode matrices in a ggml block type (Q4_0…Q8_0, Q4_K, Q6_K) with per-pattern overrides"

    let type: DType
    let selection: EncodingSelection
    let overrides: [(TensorPattern, DType)]

    public init(options: Options) throws {
        type = try EncodingName.parse(options.type, field: "options of pass 'quantize-ggml': type")
        selection = try EncodingSelection(
            tensors: options.tensors, minimumRank: options.minRank ?? 2, passID: Self.passID)
        overrides = try (options.overrides ?? []).enumerated().map { index, override in
            let field = "options of pass 'quantize-ggml': overrides[\(index)]"
            return (
                try TensorPattern(override.pattern, field: field + ".pattern"),
                try EncodingName.parse(override.type, field: field + ".type")
            )
        }
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        try planEncoding(graph, passID: Self.passID, selection: .everything) { tensor in
            if let override = overrides.first(where: { $0.0.matches(tensor.name) }) { return override.1 }
            return selection.selects(tensor) ? type : tensor.info.dtype
        }
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        try applyEncoding(plan(graph), to: &graph)
    }
}

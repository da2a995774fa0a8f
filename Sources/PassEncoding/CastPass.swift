import LatheCore

/// `cast`: changes the floating-point encoding of the selected tensors (F32, F16, BF16, F64).
public struct CastPass: ModelPass {
    public struct Options: Codable, Sendable {
        /// The target encoding: f32, f16, bf16 or f64.
        public var to: String
        /// Regex over tensor names (HF or GGUF spelling); all tensors when absent.
        public var tensors: String?
        /// Only tensors of at least this rank (0: every tensor).
        public var minRank: Int?
    }

    public static let passID = "cast"
    public static let summary = "change the float encoding (f32, f16, bf16, f64) of tensors matching a pattern"

    let target: DType
    let selection: EncodingSelection

    public init(options: Options) throws {
        target = try EncodingName.parse(options.to, field: "options of pass 'cast': to")
        guard target.isFloatingPoint else {
            throw LatheError.invalidValue(
                field: "options of pass 'cast': to", value: options.to,
                expected: "f32, f16, bf16 or f64 (use quantize-ggml for block types)")
        }
        selection = try EncodingSelection(
            tensors: options.tensors, minimumRank: options.minRank ?? 0, passID: Self.passID)
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        try planEncoding(graph, passID: Self.passID, selection: selection) { _ in target }
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        try applyEncoding(plan(graph), to: &graph)
    }
}

import Foundation
import LatheCore

/// Decides each tensor's output encoding for `lathe convert`, validates every decision before
/// anything is written, and returns a graph whose converted tensors are computed one at a time as
/// the writer streams them.
public struct ConversionPlan {
    /// A `--tensor-type REGEX=TYPE` override.
    public struct Rule {
        public var pattern: TensorPattern
        public var dtype: DType
        /// As given on the command line, for messages.
        public var text: String

        /// Parses `REGEX=TYPE`; the regex is searched in both the HF and GGUF tensor names.
        public init(_ text: String) throws {
            guard let equals = text.lastIndex(of: "=") else {
                throw LatheError.invalidValue(
                    field: "--tensor-type", value: text, expected: "REGEX=TYPE, e.g. 'attn_v=q8_0'")
            }
            self.text = text
            pattern = try TensorPattern(String(text[..<equals]), field: "--tensor-type")
            dtype = try EncodingName.parse(String(text[text.index(after: equals)...]))
        }

        func matches(_ name: String) -> Bool { pattern.matches(name) }
    }

    /// The type names `--type` accepts.
    public static var typeNames: [String: DType] { EncodingName.all }

    public static func parseType(_ text: String) throws -> DType { try EncodingName.parse(text) }

    public var defaultType: DType?
    public var rules: [Rule]
    /// The encoding for a matrix whose rows the chosen block type does not divide (Q4_K's 256 on a
    /// 576-wide model), as llama-quantize falls back on its own; nil: such a matrix is an error.
    public var fallbackType: DType?

    public init(defaultType: DType?, rules: [Rule], fallbackType: DType? = nil) {
        self.defaultType = defaultType
        self.rules = rules
        self.fallbackType = fallbackType
    }

    /// The encoding `tensor` gets: the first matching rule, else `--type` for weight matrices, else
    /// its own type when the target can hold it, else F32. A rule's block type applies to weight
    /// matrices only, as `--type` does: a norm vector in Q8_0 is what no runtime expects, and a
    /// quantized online rotation (`OnlineTransforms.isTransformTensor`) changes every product through it.
    /// A tensor no rule names gets the writer's preferred encoding when it has one
    /// (`FormatWriter.preferredType`: GGUF's F32 vectors).
    func target(for tensor: Tensor, writer: any FormatWriter.Type) -> DType {
        if let rule = rule(for: tensor) { return rule.dtype }
        if let defaultType, Self.isWeightMatrix(tensor) { return defaultType }
        if let preferred = writer.preferredType(for: tensor.info) { return preferred }
        return writer.supports(tensor.info.dtype) ? tensor.info.dtype : .f32
    }

    func rule(for tensor: Tensor) -> Rule? {
        rules.first { $0.matches(tensor.name) && ($0.dtype.isFloatingPoint || Self.isWeightMatrix(tensor)) }
    }

    static func isWeightMatrix(_ tensor: Tensor) -> Bool {
        tensor.info.shape.rank >= 2 && !OnlineTransforms.isTransformTensor(tensor.name)
    }

    /// Checks every tensor's conversion, then returns the graph with conversions deferred.
    public func apply(to graph: ModelGraph, writer: any FormatWriter.Type, diagnostics: Diagnostics) throws
        -> ModelGraph
    {
        let (supports, writerID) = (writer.supports, writer.formatID)
        var result = graph
        var fallbacks: [Tensor] = []
        var blockFallbacks: [(name: String, from: DType)] = []
        for rule in rules where !graph.tensors.contains(where: { rule.matches($0.name) }) {
            diagnostics.warning(
                "--tensor-type \(rule.text) matches no tensor (the regex is searched in HF and GGUF names)")
        }
        for tensor in graph.tensors {
            var dtype = target(for: tensor, writer: writer)
            if let fallbackType, case .quantized(.ggml(let type)) = dtype,
                (tensor.info.shape.dimensions.last ?? 1) % type.blockSize != 0
            {
                blockFallbacks.append((tensor.name, dtype))
                dtype = fallbackType
            }
            guard dtype != tensor.info.dtype else { continue }
            guard supports(dtype) else {
                throw LatheError.inTensor(
                    tensor.name,
                    .invalidValue(field: "type", value: "\(dtype)", expected: "a type the \(writerID) format can store")
                )
            }
            guard TensorCodec.canDecode(tensor.info.dtype), TensorCodec.canEncode(dtype) else {
                throw LatheError.inTensor(
                    tensor.name,
                    .notImplemented(
                        capability: "converting \(tensor.info.dtype) to \(dtype)", detail: "choose another --type"))
            }
            let info = TensorInfo(name: tensor.name, dtype: dtype, shape: tensor.info.shape)
            // A row that does not fill whole blocks fails here, naming the tensor.
            do { _ = try info.byteCount() } catch {
                var inner = error
                if case .inTensor(_, let wrapped) = error { inner = wrapped }
                guard case .invalidShape(let dimensions, let reason) = inner else { throw error }
                let hint =
                    fallbackType == nil
                    ? " (--fallback-type q5_0, say, encodes such matrices otherwise, as llama-quantize does)"
                    : blockFallbacks.last?.name == tensor.name ? " (the --fallback-type does not fit either)" : ""
                throw LatheError.inTensor(tensor.name, .invalidShape(dimensions, reason: reason + hint))
            }
            if !supports(tensor.info.dtype), rule(for: tensor) == nil,
                defaultType == nil || !Self.isWeightMatrix(tensor)
            {
                fallbacks.append(tensor)
            }
            try result.replace(TensorCodec.streamingConversion(tensor, to: dtype))
        }
        if let fallbackType, let first = blockFallbacks.first {
            let names = blockFallbacks.prefix(3).map(\.name).joined(separator: ", ")
            diagnostics.warning(
                "\(blockFallbacks.count) matrices in \(fallbackType) instead of \(first.from) (--fallback-type): their rows "
                    + "are not a whole number of blocks: \(names)"
                    + (blockFallbacks.count > 3 ? " and \(blockFallbacks.count - 3) more" : ""))
        }
        if !fallbacks.isEmpty {
            let named = fallbacks.prefix(3).map { "\($0.name) (\($0.info.dtype))" }.joined(separator: ", ")
            // F32 holds integers exactly only up to 2^24.
            let wideIntegers = fallbacks.contains { [.u32, .i32, .u64, .i64].contains($0.info.dtype) }
            diagnostics.warning(
                "\(fallbacks.count) tensor(s) converted to F32, which \(writerID) can store: \(named)"
                    + (fallbacks.count > 3 ? " and \(fallbacks.count - 3) more" : "")
                    + (wideIntegers ? "; integers past 2^24 lose precision" : "")
                    + " (choose another encoding with --type or --tensor-type, or with a cast or quantize-ggml step in a recipe)"
            )
        }
        return result
    }
}

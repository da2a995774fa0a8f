import FormatGGUF
import Foundation
import LatheCore

/// Decides each tensor's output encoding for `lathe convert`, validates every decision before
/// anything is written, and returns a graph whose converted tensors are computed one at a time as
/// the writer streams them.
public struct ConversionPlan {
    /// A `--tensor-type REGEX=TYPE` override.
    public struct Rule {
        public var pattern: String
        public var dtype: DType
        let regex: Regex<AnyRegexOutput>

        /// Parses `REGEX=TYPE`; the regex is searched in both the HF and GGUF tensor names.
        public init(_ text: String) throws {
            guard let equals = text.lastIndex(of: "=") else {
                throw LatheError.invalidValue(
                    field: "--tensor-type", value: text, expected: "REGEX=TYPE, e.g. 'attn_v=q8_0'")
            }
            pattern = String(text[..<equals])
            dtype = try ConversionPlan.parseType(String(text[text.index(after: equals)...]))
            do { regex = try Regex(pattern) } catch {
                throw LatheError.invalidValue(
                    field: "--tensor-type", value: pattern, expected: "a valid regular expression (\(error))")
            }
        }

        func matches(_ name: String) -> Bool {
            let names = [name, LlamaTensorNames.gguf(fromHF: name)]
            return names.contains { (try? regex.firstMatch(in: $0)) != nil }
        }
    }

    /// The type names `--type` accepts.
    public static let typeNames: [String: DType] = [
        "f32": .f32, "f16": .f16, "bf16": .bf16, "f64": .f64,
        "q8_0": .quantized(.ggml(.q8_0)), "q4_0": .quantized(.ggml(.q4_0)), "q4_1": .quantized(.ggml(.q4_1)),
        "q5_0": .quantized(.ggml(.q5_0)), "q5_1": .quantized(.ggml(.q5_1)), "q4_k": .quantized(.ggml(.q4_K)),
        "q6_k": .quantized(.ggml(.q6_K)),
    ]

    public static func parseType(_ text: String) throws -> DType {
        guard let dtype = typeNames[text.lowercased()] else {
            throw LatheError.invalidValue(
                field: "type", value: text, expected: typeNames.keys.sorted().joined(separator: ", "))
        }
        return dtype
    }

    public var defaultType: DType?
    public var rules: [Rule]

    public init(defaultType: DType?, rules: [Rule]) {
        self.defaultType = defaultType
        self.rules = rules
    }

    /// The encoding `tensor` gets: the first matching rule, else `--type` for matrices, else its own
    /// type when the target can hold it, else F32.
    func target(for tensor: Tensor, supports: (DType) -> Bool) -> DType {
        if let rule = rules.first(where: { $0.matches(tensor.name) }) { return rule.dtype }
        if let defaultType, tensor.info.shape.rank >= 2 { return defaultType }
        return supports(tensor.info.dtype) ? tensor.info.dtype : .f32
    }

    /// Checks every tensor's conversion, then returns the graph with conversions deferred.
    public func apply(
        to graph: ModelGraph, supports: (DType) -> Bool, writerID: String, diagnostics: Diagnostics
    ) throws -> ModelGraph {
        var result = graph
        var fallbacks = 0
        for tensor in graph.tensors {
            let dtype = target(for: tensor, supports: supports)
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
            _ = try info.byteCount()  // a row that does not fill whole blocks fails here, naming the tensor
            if defaultType == nil, rules.isEmpty || !rules.contains(where: { $0.matches(tensor.name) }) {
                fallbacks += 1
            }
            try result.replace(Tensor(info: info) { try TensorCodec.convert(tensor, to: dtype).storage() })
        }
        if fallbacks > 0 {
            diagnostics.warning(
                "\(fallbacks) tensor(s) dequantized to F32: \(writerID) cannot store their encoding (choose with --type)"
            )
        }
        return result
    }
}

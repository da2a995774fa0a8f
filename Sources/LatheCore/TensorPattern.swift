/// A regular expression that selects tensors by name. It is searched in both the HF and the GGUF
/// spelling of each name, so `attn_v` and `v_proj` both find the value projections.
public struct TensorPattern: @unchecked Sendable {
    public let source: String
    // Regex is immutable once built; matching does not mutate it.
    private let regex: Regex<AnyRegexOutput>

    public init(_ source: String, field: String = "pattern") throws(LatheError) {
        self.source = source
        do {
            regex = try Regex(source)
        } catch {
            throw .invalidValue(field: field, value: source, expected: "a valid regular expression (\(error))")
        }
    }

    public func matches(_ name: String) -> Bool {
        [name, LlamaTensorNames.gguf(fromHF: name)].contains { (try? regex.firstMatch(in: $0)) != nil }
    }
}

/// The encoding names the CLI and recipes accept.
public enum EncodingName {
    public static let all: [String: DType] = [
        "f32": .f32, "f16": .f16, "bf16": .bf16, "f64": .f64,
        "q8_0": .quantized(.ggml(.q8_0)), "q4_0": .quantized(.ggml(.q4_0)), "q4_1": .quantized(.ggml(.q4_1)),
        "q5_0": .quantized(.ggml(.q5_0)), "q5_1": .quantized(.ggml(.q5_1)), "q4_k": .quantized(.ggml(.q4_K)),
        "q6_k": .quantized(.ggml(.q6_K)),
    ]

    public static func parse(_ text: String, field: String = "type") throws(LatheError) -> DType {
        guard let dtype = all[text.lowercased()] else {
            throw .invalidValue(field: field, value: text, expected: all.keys.sorted().joined(separator: ", "))
        }
        return dtype
    }
}

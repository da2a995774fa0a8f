import Foundation
import LatheCore

/// The differences between two models: metadata, tokenizer, tensor inventory and values.
public struct ModelComparison {
    public struct TensorDifference {
        public var name: String
        public var dtypes: (DType, DType)
        /// ‖b − a‖₂ / ‖a‖₂ (‖b − a‖₂ when a is zero).
        public var relativeError: Double
        public var maxAbsDifference: Double
        public var bytesIdentical: Bool
        /// Whether the values differ at all (a NaN error is a difference: `== 0` is false for it).
        public var differs: Bool { !(relativeError == 0 && maxAbsDifference == 0) }
    }

    public var addedKeys: [String] = []
    public var removedKeys: [String] = []
    public var changedKeys: [String] = []
    public var onlyInFirst: [String] = []
    public var onlyInSecond: [String] = []
    public var shapeMismatches: [(String, Shape, Shape)] = []
    public var tensors: [TensorDifference] = []
    public var tokenizerDifferences: [String] = []
    /// Carried source files (`isCarriedFile`) that only one model has: reported, not counted.
    public var carriedInOne: [String] = []

    /// Keys that describe how a file encodes the model or where it came from, not the model itself:
    /// formats add or recompute them, and recipe outputs record their provenance.
    public static let encodingKeys: Set<String> = [
        "general.file_type", "general.quantization_version", "general.alignment", "lathe.manifest",
    ]

    /// Whole source files a conversion carries along so it can write them back (an HF directory's
    /// config.json, tokenizer_config.json, generation_config.json and tokenizer.json, whose content
    /// the config and tokenizer comparisons already cover): compared when both models have them, not
    /// counted when only one does.
    public static func isCarriedFile(_ key: String) -> Bool {
        key.hasPrefix("lathe.hf.") || key == "tokenizer.huggingface.json"
    }

    public init(_ a: ModelGraph, _ b: ModelGraph, diagnostics: Diagnostics = .silent) throws {
        for (key, value) in a.metadata where !Self.encodingKeys.contains(key) {
            if let other = b.metadata[key] {
                if other != value, !(Self.isCarriedFile(key) && Self.sameJSON(value, other)) { changedKeys.append(key) }
            } else if Self.isCarriedFile(key) {
                carriedInOne.append(key)
            } else {
                removedKeys.append(key)
            }
        }
        let onlyInB = b.metadata.keys.filter { a.metadata[$0] == nil && !Self.encodingKeys.contains($0) }
        addedKeys = onlyInB.filter { !Self.isCarriedFile($0) }
        carriedInOne += onlyInB.filter(Self.isCarriedFile)
        tokenizerDifferences = Self.compare(a.tokenizer, b.tokenizer)
        onlyInFirst = a.tensorNames.filter { b[$0] == nil }
        onlyInSecond = b.tensorNames.filter { a[$0] == nil }
        let shared = a.tensors.filter { b[$0.name] != nil }
        for (index, tensor) in shared.enumerated() {
            guard let other = b[tensor.name] else { continue }
            guard tensor.info.shape == other.info.shape else {
                shapeMismatches.append((tensor.name, tensor.info.shape, other.info.shape))
                continue
            }
            tensors.append(try Self.compare(tensor, other))
            diagnostics.progress(.verifying, fraction: Double(index + 1) / Double(shared.count), tensor.name)
        }
    }

    /// Two carried JSON files that say the same thing: a transformers-written config.json (indented)
    /// and Lathe's (compact), or a tokenizer.json whose merges one version of `tokenizers` writes as
    /// pairs and another as "a b" strings, are one file.
    static func sameJSON(_ a: MetadataValue, _ b: MetadataValue) -> Bool {
        guard let a = a.stringValue.flatMap({ try? JSONValue.parse($0) }),
            let b = b.stringValue.flatMap({ try? JSONValue.parse($0) })
        else { return false }
        return canonical(a).serialized() == canonical(b).serialized()
    }

    /// Keys sorted, numbers by value, and a merge given as one "a b" string written as a pair.
    static func canonical(_ value: JSONValue, key: String = "") -> JSONValue {
        switch value {
        case .object(let entries):
            return .object(entries.sorted { $0.key < $1.key }.map { ($0.key, canonical($0.value, key: $0.key)) })
        case .array(let items) where key == "merges":
            // "a b" is the pair ["a", "b"]; a pair's parts may hold spaces, so pairs are the common form.
            return .array(
                items.map { item in
                    let parts = item.stringValue?.split(separator: " ", omittingEmptySubsequences: false)
                    guard let parts, parts.count == 2 else { return canonical(item) }
                    return .array(parts.map { .string(String($0)) })
                })
        case .array(let items):
            return .array(items.map { canonical($0) })
        case .number(let text):
            return Double(text).map { .number("\($0)") } ?? value
        default:
            return value
        }
    }

    public var identical: Bool {
        addedKeys.isEmpty && removedKeys.isEmpty && changedKeys.isEmpty && onlyInFirst.isEmpty && onlyInSecond.isEmpty
            && shapeMismatches.isEmpty && tokenizerDifferences.isEmpty
            && !tensors.contains(where: \.differs)
    }

    static func compare(_ a: Tensor, _ b: Tensor) throws -> TensorDifference {
        let (sa, sb) = (try a.storage(), try b.storage())
        if a.info.dtype == b.info.dtype, sa.withUnsafeBytes({ x in sb.withUnsafeBytes { y in x.elementsEqual(y) } }) {
            return TensorDifference(
                name: a.name, dtypes: (a.info.dtype, b.info.dtype), relativeError: 0, maxAbsDifference: 0,
                bytesIdentical: true)
        }
        let (x, y) = (try TensorCodec.decode(a), try TensorCodec.decode(b))
        var difference = 0.0
        var norm = 0.0
        var worst = 0.0
        for i in x.indices {
            let d = Double(y[i]) - Double(x[i])
            difference += d * d
            norm += Double(x[i]) * Double(x[i])
            // Written so that a NaN is kept once met: max() would drop it and report 0.
            if !worst.isNaN, !(abs(d) <= worst) { worst = abs(d) }
        }
        let relative = norm > 0 ? (difference / norm).squareRoot() : difference.squareRoot()
        return TensorDifference(
            name: a.name, dtypes: (a.info.dtype, b.info.dtype), relativeError: relative, maxAbsDifference: worst,
            bytesIdentical: false)
    }

    /// How two tokenizers differ, one phrase per difference (none: they tokenize alike).
    public static func compare(_ a: TokenizerDescription?, _ b: TokenizerDescription?) -> [String] {
        // GGUF's [PADn] tokens are no difference: a model and its GGUF have one vocabulary.
        guard let a = a?.unpadded, let b = b?.unpadded else {
            return a == nil && b == nil ? [] : ["only one model has a tokenizer"]
        }
        var differences: [String] = []
        if a.model != b.model { differences.append("model \(a.model) vs \(b.model)") }
        if a.preTokenizer != b.preTokenizer {
            differences.append("pre-tokenizer \(a.preTokenizer ?? "none") vs \(b.preTokenizer ?? "none")")
        }
        if a.tokens != b.tokens {
            let first = zip(a.tokens, b.tokens).enumerated().first { $0.element.0 != $0.element.1 }?.offset
            differences.append(
                "vocabulary: \(a.tokens.count) vs \(b.tokens.count) tokens\(first.map { ", first difference at id \($0)" } ?? "")"
            )
        }
        if a.merges != b.merges { differences.append("merges: \(a.merges.count) vs \(b.merges.count)") }
        if a.tokenTypes != b.tokenTypes { differences.append("token types differ") }
        for (name, x, y) in [("bos", a.bosTokenID, b.bosTokenID), ("eos", a.eosTokenID, b.eosTokenID)] where x != y {
            differences.append("\(name) id \(x.map(String.init) ?? "none") vs \(y.map(String.init) ?? "none")")
        }
        return differences
    }

    public func text(all: Bool) -> String {
        var lines: [String] = []
        func list(_ title: String, _ items: [String]) {
            guard !items.isEmpty else { return }
            lines.append(
                "\(title) (\(items.count)): " + items.prefix(20).joined(separator: ", ")
                    + (items.count > 20 ? ", …" : ""))
        }
        list("metadata keys only in the first", removedKeys)
        list("metadata keys only in the second", addedKeys)
        list("metadata keys with different values", changedKeys)
        list("tokenizer", tokenizerDifferences)
        list("tensors only in the first", onlyInFirst)
        list("tensors only in the second", onlyInSecond)
        list("tensors with different shapes", shapeMismatches.map { "\($0.0) \($0.1) vs \($0.2)" })
        let differing = tensors.filter { all || $0.differs }
        if !differing.isEmpty {
            lines.append("tensor values (relative L2 error, max |difference|):")
            for t in differing {
                lines.append(
                    "  \(t.name): \(t.dtypes.0) vs \(t.dtypes.1), \(String(format: "%.3e", t.relativeError)), \(String(format: "%.3e", t.maxAbsDifference))"
                        + (t.bytesIdentical ? " (identical bytes)" : ""))
            }
        }
        list("not counted: source files carried by one model only", carriedInOne)
        // A NaN error is the worst there is (and is not 0: `== 0` is false for it).
        let worst =
            tensors.first { $0.relativeError.isNaN }
            ?? tensors.max { $0.relativeError < $1.relativeError }
        if identical {
            lines.append("identical: \(tensors.count) tensors, all metadata keys and the tokenizer match")
        } else if let worst, tensors.contains(where: \.differs) {
            lines.append("different: worst tensor \(worst.name) \(String(format: "%.3e", worst.relativeError))")
        } else {
            lines.append("different: as listed above; every shared tensor's values match")
        }
        return lines.joined(separator: "\n")
    }

    public func json(all: Bool) -> JSONValue {
        .object([
            ("identical", .bool(identical)),
            (
                "metadata",
                .object([
                    ("only_in_first", .array(removedKeys.map(JSONValue.string))),
                    ("only_in_second", .array(addedKeys.map(JSONValue.string))),
                    ("changed", .array(changedKeys.map(JSONValue.string))),
                    ("carried_in_one_only", .array(carriedInOne.map(JSONValue.string))),
                ])
            ),
            ("tokenizer", .array(tokenizerDifferences.map(JSONValue.string))),
            ("tensors_only_in_first", .array(onlyInFirst.map(JSONValue.string))),
            ("tensors_only_in_second", .array(onlyInSecond.map(JSONValue.string))),
            (
                "shape_mismatches",
                .array(
                    shapeMismatches.map {
                        .object([
                            ("name", .string($0.0)), ("first", .string("\($0.1)")), ("second", .string("\($0.2)")),
                        ])
                    })
            ),
            (
                "tensors",
                .array(
                    tensors.filter { all || $0.differs }.map { t in
                        .object([
                            ("name", .string(t.name)), ("first_dtype", .string("\(t.dtypes.0)")),
                            ("second_dtype", .string("\(t.dtypes.1)")),
                            ("relative_error", .number("\(t.relativeError)")),
                            ("max_abs_difference", .number("\(t.maxAbsDifference)")),
                        ])
                    })
            ),
        ])
    }
}

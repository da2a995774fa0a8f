import Foundation

/// How one kind of activation is quantized at run time: each row is cut into groups (the whole row
/// when `groupSize` is nil); each group's last `highCount` values form the high-precision part.
/// Both parts get their own asymmetric scale and zero point.
public struct ActivationQuantizer: Codable, Sendable, Equatable {
    public var bits: Int
    /// Bits of the tail part of each group (ignored when `highCount` is 0).
    public var highBits: Int
    public var highCount: Int
    public var groupSize: Int?
    /// Whether each part's range is widened to contain zero (the reference's per-token path does,
    /// its grouped path does not).
    public var includeZero: Bool
    public var clip: Float

    public init(
        bits: Int, highBits: Int = 8, highCount: Int = 0, groupSize: Int? = nil, includeZero: Bool, clip: Float = 1
    ) {
        self.bits = bits
        self.highBits = highBits
        self.highCount = highCount
        self.groupSize = groupSize
        self.includeZero = includeZero
        self.clip = clip
    }

    /// One run of a row that gets its own scale and zero point.
    public struct Part: Sendable, Equatable {
        public var start: Int
        public var count: Int
        public var bits: Int
    }

    /// The parts of a row of `width` values, in order: each group's low part, then its high part
    /// (empty parts left out). Every quantizer of activations (fake or integer) cuts rows this way.
    public func parts(width: Int) -> [Part] {
        let group = groupSize ?? width
        let high = min(highCount, group)
        var result: [Part] = []
        for start in stride(from: 0, to: width, by: max(group, 1)) {
            if group - high > 0 { result.append(Part(start: start, count: group - high, bits: bits)) }
            if high > 0 { result.append(Part(start: start + group - high, count: high, bits: highBits)) }
        }
        return result
    }

    /// Fake-quantizes `rows` rows of `width` values in place.
    public func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, width: Int) {
        let parts = parts(width: width)
        for row in 0..<rows {
            for part in parts {
                UniformQuantizer.asymmetric(
                    x + row * width + part.start, count: part.count, bits: part.bits, includeZero: includeZero,
                    clip: clip)
            }
        }
    }

    /// Checks the settings against the row width they will see.
    public func validate(width: Int, field: String) throws(LatheError) {
        let group = groupSize ?? width
        guard (2...16).contains(bits), (2...16).contains(highBits) else {
            throw .invalidValue(field: field + ".bits", value: "\(bits)/\(highBits)", expected: "2 to 16 bits")
        }
        guard group > 0, width % group == 0, (0...group).contains(highCount) else {
            throw .invalidValue(
                field: field, value: "group \(group), high \(highCount)",
                expected: "a group size dividing the row width \(width) and a high count within the group")
        }
        guard clip > 0, clip <= 1 else {
            throw .invalidValue(field: field + ".clip", value: "\(clip)", expected: "a ratio in (0, 1]")
        }
    }
}

/// What the runtime quantizes on the fly, recorded in a model's metadata (`lathe.quantization`) by
/// the quantization passes. Weights are already quantized in the file; activations and the KV
/// cache are quantized here exactly as written, so a simulated model and a packed one agree.
public struct QuantizationScheme: Codable, Sendable, Equatable {
    public static let metadataKey = "lathe.quantization"

    /// Per activation site (`attn_input`, `mlp_input`, `o_proj_input`, `down_proj_input`).
    public var activations: [String: ActivationQuantizer] = [:]
    /// The key cache, per (token, KV head) after RoPE and the online key rotation.
    public var keys: ActivationQuantizer?
    /// The value cache, per (token, KV head) at the value projection's output.
    public var values: ActivationQuantizer?
    /// Bits of the per-(token, head) asymmetric quantization of q and k before the online key
    /// rotation (the rotation's input is quantized as an integer kernel would see it).
    public var queryKeyBits: Int?
    /// How the weights were quantized (informational: the weights in the file already are).
    public var weights: WeightQuantizationRecord?

    public init() {}

    public var isEmpty: Bool {
        activations.isEmpty && keys == nil && values == nil && queryKeyBits == nil && weights == nil
    }

    /// The scheme recorded in `metadata`, or an empty one.
    public init(metadata: Metadata) throws(LatheError) {
        self = try MetadataRecord.decode(Self.self, metadata, key: Self.metadataKey) ?? Self()
    }

    public func store(in metadata: inout Metadata) throws(LatheError) {
        try MetadataRecord.store(isEmpty ? nil : self, in: &metadata, key: Self.metadataKey)
    }

    /// Checks that every quantizer fits the width of the activations it quantizes in a model of
    /// `config`: the sites are known, and the high-precision parts fit.
    public func validate(for config: LlamaConfig) throws(LatheError) {
        let widths = [
            "attn_input": config.hiddenSize, "mlp_input": config.hiddenSize,
            "o_proj_input": config.headCount * config.headDim, "down_proj_input": config.ffnSize,
        ]
        for (site, quantizer) in activations {
            guard let width = widths[site] else {
                throw .invalidValue(
                    field: "metadata \(Self.metadataKey): activations", value: site,
                    expected: "one of " + widths.keys.sorted().joined(separator: ", "))
            }
            try quantizer.validate(width: width, field: "metadata \(Self.metadataKey): \(site)")
        }
        let kvWidth = config.kvHeadCount * config.headDim
        try keys?.validate(width: kvWidth, field: "metadata \(Self.metadataKey): keys")
        try values?.validate(width: kvWidth, field: "metadata \(Self.metadataKey): values")
    }
}

/// How a model's weights were quantized, for readers of the file (the packed writer, reports).
public struct WeightQuantizationRecord: Codable, Sendable, Equatable {
    public var method: String
    public var bits: Int
    public var highBits: Int
    /// High-precision input columns (the tail) of matrices reading the hidden state, and per head
    /// of the output projection.
    public var hiddenHighColumns: Int
    public var headHighColumns: Int
    public var groupSize: Int?
    public var tensors: [String]
    /// Each scale has an integer zero point (nil: symmetric, as files before this field).
    public var asymmetric: Bool?
    /// The groups were cut from the columns in act order (by the Hessian's diagonal), so a group's
    /// columns are scattered and the record does not say which they are (nil: contiguous runs).
    public var actOrderGroups: Bool?
    /// Every scale is an F16 value (nil: F32).
    public var halfScales: Bool?

    public init(
        method: String, bits: Int, highBits: Int, hiddenHighColumns: Int, headHighColumns: Int, groupSize: Int?,
        tensors: [String], asymmetric: Bool? = nil, halfScales: Bool? = nil, actOrderGroups: Bool? = nil
    ) {
        self.asymmetric = asymmetric
        self.halfScales = halfScales
        self.actOrderGroups = actOrderGroups
        self.method = method
        self.bits = bits
        self.highBits = highBits
        self.hiddenHighColumns = hiddenHighColumns
        self.headHighColumns = headHighColumns
        self.groupSize = groupSize
        self.tensors = tensors
    }
}

/// JSON records kept as string metadata values (every format carries strings).
public enum MetadataRecord {
    public static func decode<T: Decodable>(_ type: T.Type, _ metadata: Metadata, key: String) throws(LatheError)
        -> T?
    {
        guard let value = metadata[key] else { return nil }
        guard let text = value.stringValue else {
            throw .invalidValue(field: "metadata \(key)", value: "\(value.type)", expected: "a JSON string")
        }
        do {
            return try JSONDecoder().decode(T.self, from: Data(text.utf8))
        } catch {
            throw DecodingFailure.describe(error, in: text, field: "metadata \(key)")
        }
    }

    public static func store<T: Encodable>(_ value: T?, in metadata: inout Metadata, key: String) throws(LatheError) {
        guard let value else {
            metadata[key] = nil
            return
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do {
            metadata[key] = .string(String(decoding: try encoder.encode(value), as: UTF8.self))
        } catch {
            throw .invalidValue(field: "metadata \(key)", value: "\(error)", expected: "an encodable record")
        }
    }
}

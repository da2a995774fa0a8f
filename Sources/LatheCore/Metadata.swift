/// The value types a model file's metadata can hold (GGUF's 13 types; safetensors and JSON map onto
/// the subset they have).
public enum MetadataType: UInt32, CaseIterable, Sendable, Codable {
    case uint8 = 0
    case int8, uint16, int16, uint32, int32, float32, bool, string, array, uint64, int64, float64
}

/// One metadata value. Arrays carry their element type so that empty arrays round-trip.
public enum MetadataValue: Hashable, Sendable {
    case uint8(UInt8)
    case int8(Int8)
    case uint16(UInt16)
    case int16(Int16)
    case uint32(UInt32)
    case int32(Int32)
    case uint64(UInt64)
    case int64(Int64)
    case float32(Float)
    case float64(Double)
    case bool(Bool)
    case string(String)
    case array(MetadataType, [MetadataValue])

    public var type: MetadataType {
        switch self {
        case .uint8: .uint8
        case .int8: .int8
        case .uint16: .uint16
        case .int16: .int16
        case .uint32: .uint32
        case .int32: .int32
        case .uint64: .uint64
        case .int64: .int64
        case .float32: .float32
        case .float64: .float64
        case .bool: .bool
        case .string: .string
        case .array: .array
        }
    }

    /// The value as an integer, if it is one of the integer types (or a bool) and fits.
    public var intValue: Int? {
        switch self {
        case .uint8(let v): Int(v)
        case .int8(let v): Int(v)
        case .uint16(let v): Int(v)
        case .int16(let v): Int(v)
        case .uint32(let v): Int(v)
        case .int32(let v): Int(v)
        case .uint64(let v): Int(exactly: v)
        case .int64(let v): Int(v)
        case .bool(let v): v ? 1 : 0
        default: nil
        }
    }

    public var doubleValue: Double? {
        switch self {
        case .float32(let v): Double(v)
        case .float64(let v): v
        default: intValue.map(Double.init)
        }
    }

    public var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var arrayValue: [MetadataValue]? {
        if case .array(_, let values) = self { return values }
        return nil
    }

    /// A short human-readable rendering (arrays are summarised).
    public var summary: String {
        switch self {
        case .string(let s): return s.count > 60 ? "\"\(s.prefix(57))…\" (\(s.count) chars)" : "\"\(s)\""
        case .array(let type, let values):
            let head = values.prefix(3).map(\.summary).joined(separator: ", ")
            return "[\(type)×\(values.count)] [\(head)\(values.count > 3 ? ", …" : "")]"
        case .float32(let v): return "\(v)"
        case .float64(let v): return "\(v)"
        case .bool(let v): return "\(v)"
        default: return intValue.map(String.init) ?? "\(self)"
        }
    }
}

/// Metadata entries in file order (GGUF keeps key order, and so must a round trip).
public struct Metadata: Hashable, Sendable, Sequence {
    public private(set) var keys: [String] = []
    private var values: [String: MetadataValue] = [:]

    public init() {}

    public init(_ entries: [(String, MetadataValue)]) {
        for (key, value) in entries { self[key] = value }
    }

    public var count: Int { keys.count }

    /// Setting an existing key keeps its position; setting nil removes it.
    public subscript(key: String) -> MetadataValue? {
        get { values[key] }
        set {
            if let newValue {
                if values.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if values.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }

    public func makeIterator() -> AnyIterator<(key: String, value: MetadataValue)> {
        var index = 0
        return AnyIterator {
            guard index < keys.count else { return nil }
            defer { index += 1 }
            return values[keys[index]].map { (keys[index], $0) }
        }
    }
}

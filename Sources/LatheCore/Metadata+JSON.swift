/// A lossless JSON form of typed metadata, for formats whose own metadata is weaker (safetensors'
/// `__metadata__` holds only strings). Scalars are written as strings in Swift's shortest
/// round-trip spelling, so floats come back bit for bit.
extension Metadata {
    public func jsonValue() -> JSONValue {
        .object(map { ($0.key, Self.encode($0.value)) })
    }

    public init(json: JSONValue, field: String) throws(LatheError) {
        guard let entries = json.objectValue else {
            throw .invalidValue(field: field, value: "not an object", expected: "an object of typed metadata entries")
        }
        self.init()
        for (key, value) in entries { self[key] = try Self.decode(value, field: "\(field).\(key)") }
    }

    private static func encode(_ value: MetadataValue) -> JSONValue {
        switch value {
        case .array(let element, let values):
            return .object([
                ("type", .string("array")), ("element", .string(name(element))),
                ("value", .array(values.map { scalarText($0).map(JSONValue.string) ?? encode($0) })),
            ])
        default:
            return .object([("type", .string(name(value.type))), ("value", .string(scalarText(value) ?? ""))])
        }
    }

    fileprivate static func scalarText(_ value: MetadataValue) -> String? {
        switch value {
        case .uint8(let v): "\(v)"
        case .int8(let v): "\(v)"
        case .uint16(let v): "\(v)"
        case .int16(let v): "\(v)"
        case .uint32(let v): "\(v)"
        case .int32(let v): "\(v)"
        case .uint64(let v): "\(v)"
        case .int64(let v): "\(v)"
        case .float32(let v): "\(v)"
        case .float64(let v): "\(v)"
        case .bool(let v): "\(v)"
        case .string(let v): v
        case .array: nil
        }
    }

    private static func name(_ type: MetadataType) -> String { String(describing: type) }

    private static func type(named name: String, field: String) throws(LatheError) -> MetadataType {
        guard let type = MetadataType.allCases.first(where: { String(describing: $0) == name }) else {
            throw .invalidValue(field: field, value: name, expected: "a metadata type name")
        }
        return type
    }

    private static func decode(_ json: JSONValue, field: String) throws(LatheError) -> MetadataValue {
        guard let typeName = json["type"]?.stringValue, let value = json["value"] else {
            throw .invalidValue(field: field, value: json.serialized(), expected: "{\"type\": …, \"value\": …}")
        }
        let type = try type(named: typeName, field: field)
        if type == .array {
            guard let elementName = json["element"]?.stringValue, let values = value.arrayValue else {
                throw .invalidValue(
                    field: field, value: json.serialized(), expected: "an array entry with element and value")
            }
            let element = try Self.type(named: elementName, field: field)
            // GGUF, whose key types these are, has no arrays of arrays (ggml's reader refuses them).
            guard element != .array else {
                throw .invalidValue(field: field, value: "element \"array\"", expected: "a scalar element type")
            }
            var decoded: [MetadataValue] = []
            decoded.reserveCapacity(values.count)
            for item in values {
                guard let text = item.stringValue else {
                    throw .invalidValue(field: field, value: item.serialized(), expected: "a string")
                }
                decoded.append(try scalar(element, text, field: field))
            }
            return .array(element, decoded)
        }
        guard let text = value.stringValue else {
            throw .invalidValue(field: field, value: value.serialized(), expected: "a string")
        }
        return try scalar(type, text, field: field)
    }

    private static func scalar(_ type: MetadataType, _ text: String, field: String) throws(LatheError) -> MetadataValue
    {
        let value: MetadataValue? =
            switch type {
            case .uint8: UInt8(text).map { .uint8($0) }
            case .int8: Int8(text).map { .int8($0) }
            case .uint16: UInt16(text).map { .uint16($0) }
            case .int16: Int16(text).map { .int16($0) }
            case .uint32: UInt32(text).map { .uint32($0) }
            case .int32: Int32(text).map { .int32($0) }
            case .uint64: UInt64(text).map { .uint64($0) }
            case .int64: Int64(text).map { .int64($0) }
            case .float32: Float(text).map { .float32($0) }
            case .float64: Double(text).map { .float64($0) }
            case .bool: Bool(text).map { .bool($0) }
            case .string: .string(text)
            case .array: nil
            }
        guard let value else { throw .invalidValue(field: field, value: text, expected: "a \(type) value") }
        return value
    }
}

extension MetadataValue {
    /// The whole value as a script reads it (`lathe inspect --json --metadata`): numbers as JSON
    /// numbers (null when not finite), text and flags as themselves, arrays element by element.
    /// Unlike `Metadata.jsonValue()` it does not keep the type; the caller says it beside.
    public var plainJSON: JSONValue {
        switch self {
        case .bool(let v): .bool(v)
        case .string(let v): .string(v)
        case .array(_, let values): .array(values.map(\.plainJSON))
        default: .number(Metadata.scalarText(self) ?? "null")
        }
    }
}

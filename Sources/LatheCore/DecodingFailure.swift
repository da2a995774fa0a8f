import Foundation

/// One line for a failure to decode a JSON document into a Swift type: the path of the offending
/// value, the value itself and what was expected, instead of Foundation's debug description
/// (`typeMismatch(Swift.Int, Swift.DecodingError.Context(codingPath: …))`).
public enum DecodingFailure {
    public static func describe(_ error: any Error, in document: String, field: String) -> LatheError {
        // An error a custom `init(from:)` throws itself (a plugin's check) already says what is wrong.
        if !(error is DecodingError) {
            if let error = error as? LatheError { return error }
            let reason = (error as? any LocalizedError)?.errorDescription ?? "\(error)"
            return .problem(field, reason: reason)
        }
        let root = try? JSONValue.parse(document)
        guard let error = error as? DecodingError, let root else {
            return .invalidValue(field: field, value: abbreviated(document), expected: "valid JSON")
        }
        func located(_ context: DecodingError.Context) -> (field: String, value: String) {
            var path = field
            var value: JSONValue? = root
            for key in context.codingPath {
                if let index = key.intValue {
                    path += "[\(index)]"
                    value = value?.arrayValue.flatMap { index < $0.count ? $0[index] : nil }
                } else {
                    path += ".\(key.stringValue)"
                    value = value?[key.stringValue]
                }
            }
            return (path, value.map { abbreviated($0.serialized()) } ?? "nothing")
        }
        switch error {
        case .keyNotFound(let key, let context):
            return .missingField(key.stringValue, in: located(context).field)
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let (at, value) = located(context)
            return .invalidValue(field: at, value: value, expected: noun(for: type))
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            // The document parsed, so Foundation's "not valid JSON" means a number its field cannot hold.
            return .invalidValue(
                field: field, value: abbreviated(document),
                expected: "values each field can hold (a number out of range, such as a negative count or seed?)")
        case .dataCorrupted(let context):
            let (at, value) = located(context)
            return .invalidValue(field: at, value: value, expected: "a value it can hold (\(context.debugDescription))")
        @unknown default:
            return .invalidValue(field: field, value: abbreviated(document), expected: "\(error)")
        }
    }

    /// What a value of `type` looks like in JSON.
    static func noun(for type: Any.Type) -> String {
        let name = "\(type)"
        switch name {
        case "Int", "Int8", "Int16", "Int32", "Int64", "UInt", "UInt8", "UInt16", "UInt32", "UInt64":
            return "an integer (\(name))"
        case "Double", "Float": return "a number"
        case "String": return "a string"
        case "Bool": return "true or false"
        default:
            if name.hasPrefix("Dictionary") { return "an object" }
            if name.hasPrefix("Array") { return "an array" }
            return "a \(name)"
        }
    }

    /// A value short enough for a one-line message.
    static func abbreviated(_ text: String) -> String {
        text.count <= 80 ? text : String(text.prefix(77)) + "…"
    }
}

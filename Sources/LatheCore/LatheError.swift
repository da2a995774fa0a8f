import Foundation

/// Errors of the core vocabulary. Each message names the file, tensor or field and says what to do.
public indirect enum LatheError: Error, Equatable, LocalizedError {
    case invalidShape([Int], reason: String)
    case invalidValue(field: String, value: String, expected: String)
    case missingField(String, in: String)
    case fileAccess(path: String, reason: String)
    case outOfBounds(path: String, offset: Int, length: Int, size: Int)
    case duplicateID(kind: String, id: String)
    case unknownID(kind: String, id: String, known: [String])
    case unknownTensor(String)
    case notImplemented(capability: String, detail: String)
    /// A problem with something (a model's config, a program Lathe ran): what it is, and what is wrong.
    case problem(String, reason: String)
    /// Adds the tensor's name to an error raised while handling it.
    case inTensor(String, LatheError)

    public var errorDescription: String? {
        switch self {
        case .invalidShape(let dimensions, let reason):
            return "invalid shape \(Shape(dimensions)): \(reason)"
        case .invalidValue(let field, let value, let expected):
            return "\(field): got \(value), expected \(expected)"
        case .missingField(let field, let container):
            return "\(container): missing required field '\(field)'"
        case .fileAccess(let path, let reason):
            return "\(path): \(reason)"
        case .outOfBounds(let path, let offset, let length, let size):
            return
                "\(path): \(length) bytes at offset \(offset) lie outside the file's \(size) bytes; the file is truncated or corrupt"
        case .duplicateID(let kind, let id):
            return "\(kind) '\(id)' is registered twice; each id must be unique"
        case .unknownID(let kind, let id, let known):
            let list = known.isEmpty ? "none are registered" : "known: " + known.joined(separator: ", ")
            return "unknown \(kind) '\(id)' (\(list))"
        case .unknownTensor(let name):
            return "no tensor named '\(name)'"
        case .notImplemented(let capability, let detail):
            return "\(capability) is not built yet: \(detail)"
        case .problem(let subject, let reason):
            return "\(subject): \(reason)"
        case .inTensor(let name, let underlying):
            return "tensor '\(name)': \(underlying.errorDescription ?? "\(underlying)")"
        }
    }

    /// Wraps `self` with the tensor's name (once).
    public func inTensor(_ name: String) -> LatheError {
        if case .inTensor = self { return self }
        return .inTensor(name, self)
    }
}

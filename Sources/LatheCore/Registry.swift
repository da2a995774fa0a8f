import Foundation

/// The formats and passes Lathe knows, built once by `RegistryBuilder` and then frozen: a plain
/// value with no locks, shared freely across tasks.
public struct Registry: Sendable {
    /// One row of `lathe plugins`.
    public struct Entry: Sendable, Equatable, Codable {
        public enum Kind: String, Sendable, Codable {
            case reader, writer, pass
        }
        public var kind: Kind
        public var id: String
        public var summary: String

        public init(kind: Kind, id: String, summary: String) {
            self.kind = kind
            self.id = id
            self.summary = summary
        }
    }

    public typealias PassFactory = @Sendable (Data) throws -> any ModelPass

    fileprivate var readers: [String: any FormatReader.Type] = [:]
    fileprivate var writers: [String: any FormatWriter.Type] = [:]
    fileprivate var passes: [String: (summary: String, make: PassFactory)] = [:]
    fileprivate var readerOrder: [String] = []

    /// Everything registered, readers then writers then passes, each sorted by id.
    public var entries: [Entry] {
        readers.keys.sorted().map { Entry(kind: .reader, id: $0, summary: readers[$0]?.summary ?? "") }
            + writers.keys.sorted().map { Entry(kind: .writer, id: $0, summary: writers[$0]?.summary ?? "") }
            + passes.keys.sorted().map { Entry(kind: .pass, id: $0, summary: passes[$0]?.summary ?? "") }
    }

    public func reader(_ id: String) throws(LatheError) -> any FormatReader {
        guard let type = readers[id] else {
            throw .unknownID(kind: "format reader", id: id, known: readers.keys.sorted())
        }
        return type.init()
    }

    public func writer(_ id: String) throws(LatheError) -> any FormatWriter {
        guard let type = writers[id] else {
            throw .unknownID(kind: "format writer", id: id, known: writers.keys.sorted())
        }
        return type.init()
    }

    /// Builds a pass from its JSON options.
    public func pass(_ id: String, options: Data) throws -> any ModelPass {
        guard let entry = passes[id] else {
            throw LatheError.unknownID(kind: "pass", id: id, known: passes.keys.sorted())
        }
        return try entry.make(options)
    }

    /// The first reader (in registration order) whose sniff accepts the file.
    public func detectReader(for url: URL, prefix: [UInt8]) -> (any FormatReader)? {
        readerOrder.lazy.compactMap { readers[$0] }.first { $0.sniff(url, prefix: prefix) }.map { $0.init() }
    }
}

/// Collects registrations, rejecting duplicate ids, then freezes them into a `Registry`.
public struct RegistryBuilder {
    private var registry = Registry()

    public init() {}

    public mutating func register(reader: any FormatReader.Type) throws(LatheError) {
        guard registry.readers[reader.formatID] == nil else {
            throw .duplicateID(kind: "format reader", id: reader.formatID)
        }
        registry.readers[reader.formatID] = reader
        registry.readerOrder.append(reader.formatID)
    }

    public mutating func register(writer: any FormatWriter.Type) throws(LatheError) {
        guard registry.writers[writer.formatID] == nil else {
            throw .duplicateID(kind: "format writer", id: writer.formatID)
        }
        registry.writers[writer.formatID] = writer
    }

    /// Registers a pass; its factory decodes the pass's own `Options` from JSON.
    public mutating func register<Pass: ModelPass>(pass: Pass.Type) throws(LatheError) {
        guard registry.passes[Pass.passID] == nil else { throw .duplicateID(kind: "pass", id: Pass.passID) }
        registry.passes[Pass.passID] = (
            Pass.summary,
            { data in
                let options: Pass.Options
                let given = data.isEmpty ? Data("{}".utf8) : data
                do {
                    options = try JSONDecoder().decode(Pass.Options.self, from: given)
                } catch {
                    throw DecodingFailure.describe(
                        error, in: String(decoding: given, as: UTF8.self), field: "options of pass '\(Pass.passID)'")
                }
                try Self.rejectUnknownOptions(in: data, decoded: options, passID: Pass.passID)
                return try Pass(options: options)
            }
        )
    }

    /// A misspelled option would otherwise be dropped by the decoder and the pass run with its
    /// default: every key given must come back when the decoded options are encoded again (a key
    /// given as null is the default, and is not encoded).
    static func rejectUnknownOptions<Options: Encodable>(in data: Data, decoded: Options, passID: String) throws {
        guard !data.isEmpty, let given = try? JSONValue.parse(String(decoding: data, as: UTF8.self)),
            let known = try? JSONValue.parse(String(decoding: JSONEncoder().encode(decoded), as: UTF8.self))
        else { return }
        if let path = unknownKey(given, known, path: "") {
            // The options' stored properties are their keys (synthesized Codable), optional ones too.
            let named = Mirror(reflecting: decoded).children.compactMap(\.label).sorted().joined(separator: ", ")
            throw LatheError.invalidValue(
                field: "options of pass '\(passID)'", value: "'\(path)'",
                expected: "one of the pass's options (misspelled? they are: \(named.isEmpty ? "none" : named))")
        }
    }

    private static func unknownKey(_ given: JSONValue, _ known: JSONValue, path: String) -> String? {
        switch (given, known) {
        case (.object(let givenEntries), .object(let knownEntries)):
            for (key, value) in givenEntries {
                if case .null = value { continue }
                let keyPath = path.isEmpty ? key : "\(path).\(key)"
                guard let match = knownEntries.first(where: { $0.key == key }) else { return keyPath }
                if let found = unknownKey(value, match.value, path: keyPath) { return found }
            }
        case (.array(let givenItems), .array(let knownItems)) where givenItems.count == knownItems.count:
            for (index, (item, knownItem)) in zip(givenItems, knownItems).enumerated() {
                if let found = unknownKey(item, knownItem, path: "\(path)[\(index)]") { return found }
            }
        default:
            break
        }
        return nil
    }

    /// The frozen registry.
    public func build() -> Registry { registry }
}

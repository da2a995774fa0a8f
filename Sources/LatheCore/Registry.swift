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
    fileprivate var preparations: [String: String] = [:]

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

    /// The writer whose `fileExtension` is `pathExtension` (compared without case), if any.
    public func writerID(forExtension pathExtension: String) -> String? {
        let wanted = pathExtension.lowercased()
        guard !wanted.isEmpty else { return nil }
        return writers.keys.sorted().first { writers[$0]?.fileExtension == wanted }
    }

    /// Builds a pass from its JSON options.
    public func pass(_ id: String, options: Data) throws -> any ModelPass {
        guard let entry = passes[id] else {
            throw LatheError.unknownID(kind: "pass", id: id, known: passes.keys.sorted())
        }
        return try entry.make(options)
    }

    /// The pass a writer's input goes through first, with its default options (lpack: `pack-weights`,
    /// which stores the matrices a recipe quantized as integer codes), or nil when the writer takes
    /// the graph as it is. `lathe convert` runs it before writing, and `lathe plan` plans it, so
    /// the size it estimates for each output is the size that output will have.
    public func preparation(for writerID: String) throws -> (any ModelPass)? {
        try preparations[writerID].map { try pass($0, options: Data()) }
    }

    /// `graph` as `writerID`'s writer takes it: its preparation applied, if it has one.
    public func prepare(_ graph: ModelGraph, for writerID: String, diagnostics: Diagnostics) throws -> ModelGraph {
        guard let pass = try preparation(for: writerID) else { return graph }
        let plan = try pass.plan(graph)
        guard !plan.decisions.isEmpty else { return graph }
        var graph = graph
        var context = PassContext(diagnostics: diagnostics)
        context.registry = self
        try pass.apply(&graph, context: &context)
        diagnostics.info(
            "\(writerID): \(type(of: pass).passID) re-encoded \(plan.decisions.count) tensors before writing")
        return graph
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

    /// Names the pass every graph goes through before `writerID`'s writer gets it; both must be
    /// registered already.
    public mutating func register(preparation passID: String, for writerID: String) throws(LatheError) {
        guard registry.writers[writerID] != nil else {
            throw .unknownID(kind: "format writer", id: writerID, known: registry.writers.keys.sorted())
        }
        guard registry.passes[passID] != nil else {
            throw .unknownID(kind: "pass", id: passID, known: registry.passes.keys.sorted())
        }
        guard registry.preparations[writerID] == nil else {
            throw .duplicateID(kind: "writer preparation", id: writerID)
        }
        registry.preparations[writerID] = passID
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
                    // A required option spelled wrong is reported as the misspelling, not as missing.
                    if case DecodingError.keyNotFound(let key, let context) = error,
                        let near = Self.misspelling(of: key.stringValue, at: context.codingPath, in: given)
                    {
                        throw LatheError.invalidValue(
                            field: "options of pass '\(Pass.passID)'", value: "'\(near)'",
                            expected: "'\(key.stringValue)' (a required option; misspelled?)")
                    }
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

    /// A key given beside where `missing` was expected that is one edit from it (two for names of
    /// five letters or more).
    static func misspelling(of missing: String, at path: [any CodingKey], in data: Data) -> String? {
        guard var value = try? JSONValue.parse(String(decoding: data, as: UTF8.self)) else { return nil }
        for key in path {
            if let index = key.intValue, case .array(let items) = value, items.indices.contains(index) {
                value = items[index]
            } else if let next = value[key.stringValue] {
                value = next
            } else {
                return nil
            }
        }
        guard case .object(let entries) = value else { return nil }
        let distance = { (key: String) in editDistance(key.lowercased(), missing.lowercased()) }
        let nearest = entries.map(\.key).filter { $0 != missing }.min { distance($0) < distance($1) }
        return nearest.flatMap { distance($0) <= (missing.count < 5 ? 1 : 2) ? $0 : nil }
    }

    /// Levenshtein distance between two short strings.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let (a, b) = (Array(a), Array(b))
        var previous = Array(0...b.count)
        for (i, x) in a.enumerated() {
            var current = [i + 1]
            for (j, y) in b.enumerated() {
                current.append(min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1)))
            }
            previous = current
        }
        return previous[b.count]
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

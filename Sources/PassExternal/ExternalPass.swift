import Foundation
import LatheCore

/// `external`: a pass written in any language, run as a separate program speaking the JSON protocol
/// of formats/plugin-protocol.md. Lathe sends a JSON request on the program's standard input and
/// reads a JSON reply from its standard output; tensors travel as safetensors files in a private
/// temporary directory.
public struct ExternalPass: ModelPass {
    public struct Options: Codable, Sendable {
        /// The program and its arguments, e.g. ["python3", "Examples/plugins/clamp_outliers.py"].
        public var command: [String]
        /// Options handed to the program as they are.
        public var options: JSONValueBox?

        public init(command: [String], options: JSONValueBox? = nil) {
            self.command = command
            self.options = options
        }
    }

    public static let passID = "external"
    public static let summary =
        "run a pass implemented by another program (JSON on stdin/stdout, tensors as safetensors)"
    public static let protocolVersion = "lathe-pass/1"

    let command: [String]
    let options: JSONValue

    /// Programs the user allowed on the command line (`--allow-external`). A recipe is a file like any
    /// other, possibly from the internet: naming a program in it never starts that program by itself.
    public static let allowedPrograms = AllowedPrograms()

    public init(options: Options) throws {
        guard let program = options.command.first, !program.isEmpty else {
            throw LatheError.invalidValue(
                field: "options of pass 'external': command", value: "[]", expected: "the program and its arguments")
        }
        guard Self.allowedPrograms.contains(program) else {
            throw LatheError.invalidValue(
                field: "options of pass 'external': command", value: "'\(program)'",
                expected:
                    "a program allowed on the command line (a recipe never starts one by itself): add --allow-external \(program)"
            )
        }
        command = options.command
        self.options = options.options?.value ?? .object([])
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let reply = try call(action: "plan", graph: graph, input: nil, output: nil)
        var plan = PassPlan(notes: reply["notes"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        plan.requires = reply["requires"]?.arrayValue?.compactMap(\.stringValue) ?? []
        plan.produces = reply["produces"]?.arrayValue?.compactMap(\.stringValue) ?? []
        for entry in reply["changes"]?.arrayValue ?? [] {
            guard let name = entry["name"]?.stringValue, let tensor = graph[name] else {
                throw failure("the plan names an unknown tensor \(entry.serialized())")
            }
            let dtype =
                try entry["dtype"]?.stringValue.map { try EncodingName.parse($0, field: "changes.dtype") }
                ?? tensor.info.dtype
            plan.decisions.append(TensorDecision(tensor: name, from: tensor.info.dtype, to: dtype, reason: Self.passID))
            plan.changedTensors.append(name)
            plan.peakBytes = max(plan.peakBytes, try tensor.info.shape.elementCount() * 4 * 2)
        }
        return plan
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        // The protocol's exchange format is safetensors, reached through the registry: a pass never
        // imports a format.
        guard let registry = context.registry else {
            throw LatheError.missingField(
                "registry", in: "the pass context (pass '\(Self.passID)' exchanges tensors as safetensors)")
        }
        let plan = try plan(graph)
        guard !plan.changedTensors.isEmpty else { return }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lathe-external-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let input = scratch.appendingPathComponent("input.safetensors")
        let output = scratch.appendingPathComponent("output.safetensors")
        // The program gets the tensors it asked for, as F32 in Lathe's canonical layout.
        var subset = try ModelGraph(source: graph.source)
        for name in plan.changedTensors {
            let tensor = try graph.tensor(named: name)
            try subset.append(tensor.info.dtype == .f32 ? tensor : TensorCodec.convert(tensor, to: .f32))
        }
        _ = try registry.writer("safetensors").write(subset, to: input, options: WriteOptions())
        let reply = try call(action: "apply", graph: graph, input: input, output: output)
        for note in reply["notes"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
            context.diagnostics.info("\(Self.passID): \(note)")
        }
        let result = try registry.reader("safetensors").read(output, options: ReadOptions())
        for decision in plan.decisions {
            guard let tensor = result[decision.tensor] else {
                throw failure("the output lacks tensor '\(decision.tensor)'")
            }
            guard tensor.info.shape == (try graph.tensor(named: decision.tensor)).info.shape else {
                throw failure(
                    "tensor '\(decision.tensor)' came back as \(tensor.info.shape), not \((try graph.tensor(named: decision.tensor)).info.shape)"
                )
            }
            // Copy the bytes: the scratch directory goes away with this call.
            let owned = Tensor(
                info: tensor.info, storage: TensorStorage(bytes: try tensor.storage().withUnsafeBytes { Array($0) }))
            try graph.replace(tensor.info.dtype == decision.to ? owned : TensorCodec.convert(owned, to: decision.to))
        }
    }

    private func failure(_ problem: String) -> LatheError {
        .problem(
            "pass 'external' (\(command.joined(separator: " ")), protocol \(Self.protocolVersion))", reason: problem)
    }

    /// Runs the program with one request and returns its reply.
    private func call(action: String, graph: ModelGraph, input: URL?, output: URL?) throws -> JSONValue {
        var request: [(key: String, value: JSONValue)] = [
            ("protocol", .string(Self.protocolVersion)), ("action", .string(action)), ("options", options),
            (
                "tensors",
                .array(
                    graph.tensors.map {
                        .object([
                            ("name", .string($0.name)), ("dtype", .string("\($0.info.dtype)")),
                            ("shape", .array($0.info.shape.dimensions.map(JSONValue.int))),
                        ])
                    })
            ),
        ]
        if let config = graph.config {
            request.append(
                (
                    "config",
                    .object([
                        ("hidden_size", .int(config.hiddenSize)), ("layers", .int(config.layerCount)),
                        ("heads", .int(config.headCount)),
                        ("kv_heads", .int(config.kvHeadCount)), ("head_dim", .int(config.headDim)),
                        ("ffn_size", .int(config.ffnSize)),
                    ])
                ))
        }
        if let input { request.append(("input", .string(input.path))) }
        if let output { request.append(("output", .string(output.path))) }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        // A program that exits without reading its request must not kill Lathe with SIGPIPE.
        signal(SIGPIPE, SIG_IGN)
        do { try process.run() } catch { throw failure("cannot start: \(error.localizedDescription)") }
        try? stdin.fileHandleForWriting.write(contentsOf: Data(JSONValue.object(request).serialized().utf8))
        try? stdin.fileHandleForWriting.close()
        let replyData = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = stderr.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors, as: UTF8.self).split(separator: "\n").last.map(String.init) ?? ""
            throw failure("exited with status \(process.terminationStatus): \(message)")
        }
        let reply: JSONValue
        do {
            reply = try replyData.withUnsafeBytes { raw in
                try Result { () throws(JSONParseError) in try JSONValue.parse(raw) }.get()
            }
        } catch {
            throw failure("the reply is not JSON")
        }
        if let problem = reply["error"]?.stringValue { throw failure(problem) }
        return reply
    }
}

/// Arbitrary JSON inside Codable options (the plugin's own options, passed through untouched).
public struct JSONValueBox: Codable, Sendable {
    public var value: JSONValue

    public init(_ value: JSONValue) { self.value = value }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            value = .null
        } else if let bool = try? container.decode(Bool.self) {
            value = .bool(bool)
        } else if let int = try? container.decode(Int.self) {
            value = .int(int)
        } else if let double = try? container.decode(Double.self) {
            value = .number("\(double)")
        } else if let string = try? container.decode(String.self) {
            value = .string(string)
        } else if let array = try? container.decode([JSONValueBox].self) {
            value = .array(array.map(\.value))
        } else {
            let object = try container.decode([String: JSONValueBox].self)
            value = .object(object.keys.sorted().compactMap { key in object[key].map { (key, $0.value) } })
        }
    }

    /// The value as the structure it is, so that encoding what was decoded gives it back.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case .null: try container.encodeNil()
        case .bool(let bool): try container.encode(bool)
        case .number(let text):
            if let int = Int(text) { try container.encode(int) } else { try container.encode(Double(text) ?? .nan) }
        case .string(let string): try container.encode(string)
        case .array(let values): try container.encode(values.map(JSONValueBox.init))
        case .object(let members):
            try container.encode(Dictionary(members.map { ($0.key, JSONValueBox($0.value)) }) { _, last in last })
        }
    }
}

/// The set of programs `external` steps may start, filled from the command line. Process-wide on
/// purpose: `--allow-external` is the user's word for this process, and a pass is built from a
/// recipe's JSON with nothing else to carry it. `@unchecked Sendable`: the set is only touched
/// under the lock.
public final class AllowedPrograms: @unchecked Sendable {
    private let lock = NSLock()
    private var programs: Set<String> = []

    public func allow(_ program: String) { lock.withLock { _ = programs.insert(program) } }
    public func contains(_ program: String) -> Bool { lock.withLock { programs.contains(program) } }
}

import Foundation
import LatheCore
import Testing

struct ToyReader: FormatReader {
    static let formatID = "toy"
    static let summary = "a toy format for tests"
    static func sniff(_ url: URL, prefix: [UInt8]) -> Bool { prefix.starts(with: Array("TOY!".utf8)) }
    func read(_ url: URL, options: ReadOptions) throws -> ModelGraph { try ModelGraph(source: url.path) }
}

struct ToyWriter: FormatWriter {
    static let formatID = "toy"
    static let summary = "writes toys"
    static func supports(_ dtype: DType) -> Bool { dtype == .f32 }
    func write(_ graph: ModelGraph, to url: URL, options: WriteOptions) throws -> WriteReport {
        WriteReport(path: url.path, files: [], bytesWritten: 0, tensorCount: graph.tensors.count)
    }
}

struct ScalePass: ModelPass {
    struct Options: Codable, Sendable {
        var factor: Float
    }
    static let passID = "scale"
    static let summary = "multiplies every F32 tensor by a factor"
    let options: Options

    init(options: Options) throws {
        guard options.factor.isFinite else {
            throw LatheError.invalidValue(field: "factor", value: "\(options.factor)", expected: "a finite number")
        }
        self.options = options
    }

    func plan(_ graph: ModelGraph) throws -> PassPlan {
        PassPlan(changedTensors: graph.tensors.filter { $0.info.dtype == .f32 }.map(\.name))
    }

    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        for tensor in graph.tensors where tensor.info.dtype == .f32 {
            let scaled = try tensor.storage().values(as: Float.self).map { $0 * options.factor }
            try graph.replace(Tensor(info: tensor.info, storage: TensorStorage(values: scaled)))
        }
    }
}

@Suite("Registry")
struct RegistryTests {
    func makeRegistry() throws -> Registry {
        var builder = RegistryBuilder()
        try builder.register(reader: ToyReader.self)
        try builder.register(writer: ToyWriter.self)
        try builder.register(pass: ScalePass.self)
        return builder.build()
    }

    @Test("lists exactly what was registered, readers, writers then passes")
    func lists() throws {
        let registry = try makeRegistry()
        #expect(
            registry.entries == [
                .init(kind: .reader, id: "toy", summary: "a toy format for tests"),
                .init(kind: .writer, id: "toy", summary: "writes toys"),
                .init(kind: .pass, id: "scale", summary: "multiplies every F32 tensor by a factor"),
            ])
    }

    @Test("rejects a duplicate id")
    func duplicate() throws {
        var builder = RegistryBuilder()
        try builder.register(reader: ToyReader.self)
        #expect(throws: LatheError.duplicateID(kind: "format reader", id: "toy")) {
            try builder.register(reader: ToyReader.self)
        }
    }

    @Test("an unknown id lists the known ones")
    func unknown() throws {
        let registry = try makeRegistry()
        #expect(throws: LatheError.unknownID(kind: "format writer", id: "gguf", known: ["toy"])) {
            try registry.writer("gguf")
        }
        let message = LatheError.unknownID(kind: "pass", id: "pca", known: ["scale"]).errorDescription
        #expect(message == "unknown pass 'pca' (known: scale)")
    }

    @Test("detects a reader by its magic bytes")
    func sniff() throws {
        let registry = try makeRegistry()
        let url = URL(fileURLWithPath: "/nonexistent")
        #expect(registry.detectReader(for: url, prefix: Array("TOY!rest".utf8)) is ToyReader)
        #expect(registry.detectReader(for: url, prefix: Array("GGUF".utf8)) == nil)
    }

    @Test("builds a pass from JSON options and applies it")
    func passFromJSON() throws {
        let registry = try makeRegistry()
        let pass = try registry.pass("scale", options: Data(#"{"factor": 2}"#.utf8))
        var graph = try ModelGraph(
            source: "memory",
            tensors: [
                Tensor(
                    info: TensorInfo(name: "w", dtype: .f32, shape: [3]),
                    storage: TensorStorage(values: [Float(1), 2, 3])),
                Tensor(
                    info: TensorInfo(name: "ids", dtype: .i32, shape: [1]), storage: TensorStorage(values: [Int32(7)])),
            ])
        #expect(try pass.plan(graph).changedTensors == ["w"])
        var context = PassContext()
        try pass.apply(&graph, context: &context)
        #expect(try graph.tensor(named: "w").storage().values(as: Float.self) == [2, 4, 6])
        #expect(try graph.tensor(named: "ids").storage().values(as: Int32.self) == [7])
    }

    @Test("bad pass options name the pass")
    func badOptions() throws {
        let registry = try makeRegistry()
        #expect {
            try registry.pass("scale", options: Data(#"{"factor": "big"}"#.utf8))
        } throws: { error in
            (error as? LatheError)?.errorDescription == #"options of pass 'scale'.factor: got "big", expected a number"#
        }
        // No options at all are an empty object: the message names the missing option.
        #expect(throws: LatheError.missingField("factor", in: "options of pass 'scale'")) {
            try registry.pass("scale", options: Data())
        }
    }
}

enum BasisKey: PassArtifactKey {
    typealias Value = [Float]
    static let name = "residual basis"
}

@Suite("Pass context")
struct PassContextTests {
    @Test("typed artifacts round-trip; a missing one names itself and the pass that needs it")
    func artifacts() throws {
        var context = PassContext(seed: 7)
        #expect(context[BasisKey.self] == nil)
        #expect {
            try context.require(BasisKey.self, by: "rotation")
        } throws: { error in
            let message = (error as? LatheError)?.errorDescription ?? ""
            return message.contains("residual basis") && message.contains("rotation")
        }
        context[BasisKey.self] = [1, 2]
        #expect(try context.require(BasisKey.self, by: "rotation") == [1, 2])
    }
}

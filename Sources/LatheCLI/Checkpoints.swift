import Foundation
import LatheBuiltins
import LatheCore
import LathePipeline

/// Per-step checkpoints of a recipe run in a work directory, so an interrupted run resumes where it
/// stopped. Each checkpoint is keyed by a fingerprint of everything that determines it: Lathe's
/// version, the input files' sha256, the seed, the calibration text's (or statistics file's) sha256
/// with the windows and their length, and the recipe's steps up to and including that one.
/// A changed step changes its fingerprint and every later one, so exactly the steps after the
/// change run again. Checkpoints hold the whole graph (tensors as GGUF, metadata as typed JSON).
struct Checkpoints {
    let directory: URL
    let fingerprints: [String]

    init(directory: URL, recipe: Recipe, inputDigests: [JSONValue], seed: UInt64, calibration: JSONValue) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        self.directory = directory
        var prefix: [JSONValue] = [
            .string(LatheVersion.current), .array(inputDigests), .string(String(seed)), calibration,
        ]
        var fingerprints: [String] = []
        for step in recipe.steps {
            prefix.append(.object([("pass", .string(step.pass)), ("options", step.options)]))
            var hasher = SHA256()
            hasher.update(Array(JSONValue.array(prefix).serialized().utf8))
            fingerprints.append(hasher.finalize())
        }
        self.fingerprints = fingerprints
    }

    private func tensors(_ step: Int) -> URL {
        directory.appendingPathComponent("step-\(step + 1)-\(fingerprints[step].prefix(16)).gguf")
    }
    private func metadata(_ step: Int) -> URL {
        directory.appendingPathComponent("step-\(step + 1)-\(fingerprints[step].prefix(16)).json")
    }

    /// The last step whose checkpoint exists for this exact run (and every earlier one), if any.
    func latestComplete() -> Int? {
        var latest: Int?
        for step in fingerprints.indices {
            guard FileManager.default.fileExists(atPath: metadata(step).path) else { break }
            latest = step
        }
        return latest
    }

    /// Writes the graph after `step`; the JSON is written last, so a checkpoint without it is ignored.
    /// It holds the metadata and the tensor file's sha256, checked when the checkpoint is loaded: a
    /// damaged checkpoint would otherwise resume into a silently different output.
    func save(_ graph: ModelGraph, after step: Int) throws {
        var stored = graph
        stored.config?.store(in: &stored.metadata)
        stored.tokenizer?.store(in: &stored.metadata)
        _ = try LatheEnvironment.registry.writer("gguf").write(
            stored, to: tensors(step), options: WriteOptions(overwrite: true))
        let marker = AtomicFileText(url: metadata(step))
        try marker.write(
            JSONValue.object([
                ("tensors_sha256", .string(try SHA256.file(tensors(step).path))),
                ("metadata", stored.metadata.jsonValue()),
            ]).serialized())
    }

    /// The graph as it was after `step`: tensors from the checkpoint, metadata exactly as saved.
    func load(after step: Int, source: String) throws -> ModelGraph {
        guard let text = try MappedFile.text(metadata(step)) else {
            throw LatheError.fileAccess(path: metadata(step).path, reason: "not valid UTF-8")
        }
        let marker: JSONValue
        do { marker = try JSONValue.parse(text) } catch {
            throw LatheError.fileAccess(
                path: metadata(step).path,
                reason:
                    "checkpoint is damaged (\(error.reason) at byte \(error.offset)); delete it, or run without --resume"
            )
        }
        guard let digest = marker["tensors_sha256"]?.stringValue, let recorded = marker["metadata"] else {
            throw LatheError.missingField("tensors_sha256 or metadata", in: metadata(step).path)
        }
        guard try SHA256.file(tensors(step).path) == digest else {
            throw LatheError.fileAccess(
                path: tensors(step).path,
                reason:
                    "checkpoint is damaged (its sha256 differs from the one recorded); delete it, or run without --resume"
            )
        }
        var graph = try LatheEnvironment.registry.reader("gguf").read(tensors(step), options: ReadOptions())
        graph.metadata = try Metadata(json: recorded, field: metadata(step).path)
        graph.config = try LlamaConfig(metadata: graph.metadata, source: source)
        graph.tokenizer = try TokenizerDescription(metadata: graph.metadata, source: source)
        if graph.config != nil {
            let tied = graph[LlamaTensorNames.head] == nil
            graph.config?.tiedEmbeddings = tied
        }
        graph.source = source
        return graph
    }
}

/// A small text file written beside its destination and renamed into place.
struct AtomicFileText {
    let url: URL

    func write(_ text: String) throws {
        try AtomicOutput(destination: url, overwrite: true).run { try Data(text.utf8).write(to: $0) }
    }
}

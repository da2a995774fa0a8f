import Foundation
import LatheCore

/// The manifest every recipe output embeds (metadata key `lathe.manifest`, a JSON string): the
/// resolved recipe, Lathe's version, the seed, the sha256 of every input file, of the calibration
/// text and of a statistics file used in its place, and the encoding of every tensor. It holds no timestamps or absolute paths, so
/// the same run twice gives the same bytes.
public enum Provenance {
    public static let metadataKey = "lathe.manifest"

    /// `inputDigests` (from `digests(_:)`) and `calibrationTextDigest` may be passed when the caller
    /// already computed them.
    public static func manifest(
        recipe: Recipe, input: URL, inputDigests: [JSONValue]? = nil, calibrationText: URL? = nil,
        calibrationTextDigest: String? = nil, calibrationStatistics: URL? = nil, seed: UInt64,
        graph: ModelGraph, verification: JSONValue? = nil
    ) throws -> JSONValue {
        var fields: [(key: String, value: JSONValue)] = [
            ("lathe_version", .string(LatheVersion.current)),
            (
                "recipe",
                .object([
                    ("name", .string(recipe.name)),
                    (
                        "source",
                        .string(
                            recipe.source.hasPrefix("builtin:")
                                ? recipe.source : URL(fileURLWithPath: recipe.source).lastPathComponent)
                    ),
                    (
                        "steps",
                        .array(recipe.steps.map { .object([("pass", .string($0.pass)), ("options", $0.options)]) })
                    ),
                    ("outputs", .array(recipe.outputs.map { JSONValue.string($0.format) })),
                    ("strict", .bool(recipe.strict)),
                ])
            ),
            ("seed", .number(String(seed))),
            ("inputs", .array(try inputDigests ?? digests(input))),
        ]
        // A digest the caller already computed is not computed again.
        for (key, file, digest) in [
            ("calibration_text", calibrationText, calibrationTextDigest),
            ("calibration_statistics", calibrationStatistics, nil),
        ] {
            guard let file else { continue }
            fields.append(
                (
                    key,
                    .object([
                        ("name", .string(file.lastPathComponent)),
                        ("sha256", .string(try digest ?? SHA256.file(file.path))),
                    ])
                ))
        }
        fields.append(("tensors", .object(graph.tensors.map { ($0.name, .string("\($0.info.dtype)")) })))
        if let verification { fields.append(("verification", verification)) }
        return .object(fields)
    }

    /// `graph` with its manifest's tensor table (if it has a manifest) giving the encodings it holds:
    /// a recipe's further outputs store what their format can, which may differ from the first's.
    public static func recordingEncodings(of graph: ModelGraph) throws -> ModelGraph {
        // A manifest that is not a JSON object is carried as it is, not refused here.
        guard let text = graph.metadata[metadataKey]?.stringValue, case .object(var fields) = try? JSONValue.parse(text)
        else { return graph }
        let table = JSONValue.object(graph.tensors.map { ($0.name, .string("\($0.info.dtype)")) })
        if let index = fields.firstIndex(where: { $0.key == "tensors" }) { fields[index].value = table }
        var result = graph
        result.metadata[metadataKey] = .string(JSONValue.object(fields).serialized())
        return result
    }

    /// sha256 and size of the input: the file itself, or every file of a directory (relative paths, sorted).
    public static func digests(_ input: URL) throws -> [JSONValue] {
        var isDirectory: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: input.path, isDirectory: &isDirectory)
        let files: [(name: String, url: URL)]
        if isDirectory.boolValue {
            let names = (FileManager.default.enumerator(atPath: input.path)?.compactMap { $0 as? String } ?? [])
                .sorted()
            files = names.map { (name: $0, url: input.appendingPathComponent($0)) }.filter {
                !$0.url.hasDirectoryPath && isRegularFile($0.url)
            }
        } else {
            files = [(input.lastPathComponent, input)]
        }
        return try files.map { file in
            let size = (try FileManager.default.attributesOfItem(atPath: file.url.path)[.size] as? Int) ?? 0
            return .object([
                ("name", .string(file.name)), ("bytes", .int(size)),
                ("sha256", .string(try SHA256.file(file.url.path))),
            ])
        }
    }

    private static func isRegularFile(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && !isDirectory.boolValue
    }
}

import Compression
import Foundation
import LatheCore

/// Opens a model from any path a user may give: a model file, a directory, or an archive (`.tar`,
/// `.tar.zst`, `.zip`) holding either. The format is detected from the content.
public enum ModelInput {
    /// Reads the model at `url`, with `format` forcing a reader instead of detection.
    public static func open(
        _ url: URL, format: String? = nil, options: ReadOptions = ReadOptions(),
        registry: Registry = LatheBuiltins.registry
    ) throws -> ModelGraph {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw LatheError.fileAccess(path: url.path, reason: "no such file or directory")
        }
        if ArchiveFormat(fileName: url.lastPathComponent) != nil {
            return try openArchive(url, format: format, options: options, registry: registry)
        }
        let reader = try format.map { try registry.reader($0) } ?? detect(url, registry: registry)
        return try reader.read(url, options: options)
    }

    /// The reader for `url`, chosen by its first bytes (or its layout, for directories).
    public static func detect(_ url: URL, registry: Registry = LatheBuiltins.registry) throws -> any FormatReader {
        var prefix: [UInt8] = []
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), !isDirectory.boolValue {
            // Mapped, not read through a handle: a FIFO is refused as "not a regular file" instead
            // of waiting for a writer.
            let file = try MappedFile(path: url.path)
            prefix = try file.withBytes(offset: 0, length: min(512, file.size)) { Array($0) }
        }
        guard let reader = registry.detectReader(for: url, prefix: prefix) else {
            if let container = archiveKind(prefix) {
                throw LatheError.fileAccess(
                    path: url.path,
                    reason:
                        "looks like \(container); archives are read by their names: .tar, .tar.zst (or .tzst) and .zip")
            }
            let known = registry.entries.filter { $0.kind == .reader }.map(\.id).joined(separator: ", ")
            throw LatheError.fileAccess(
                path: url.path, reason: "not a recognised model (readers: \(known)); pass --from to choose one")
        }
        return reader
    }

    /// What an archive or compressed stream's first bytes say it is, for the message about a file
    /// named otherwise.
    static func archiveKind(_ prefix: [UInt8]) -> String? {
        if prefix.starts(with: [0x50, 0x4B, 0x03, 0x04]) { return "a zip archive" }
        if prefix.starts(with: [0x28, 0xB5, 0x2F, 0xFD]) { return "a zstd stream" }
        if prefix.starts(with: [0x1F, 0x8B]) { return "a gzip stream (not read: recompress it as .tar.zst)" }
        if prefix.count >= 262, Array(prefix[257..<262]) == Array("ustar".utf8) { return "a tar archive" }
        return nil
    }

    /// The extensions of a file that is a model by itself.
    static let modelExtensions = ["gguf", "safetensors", "lpack"]
    /// The files a model in an archive can consist of: those, and an HF directory's JSON and template.
    static let modelFileExtensions = modelExtensions + ["json", "jinja"]

    /// Extracts the archive to a private temporary directory, reads the single model inside, and
    /// removes the directory: the reader has mapped what it needs, and mappings outlive unlinking.
    private static func openArchive(_ url: URL, format: String?, options: ReadOptions, registry: Registry) throws
        -> ModelGraph
    {
        options.diagnostics.progress(.reading, "extracting \(url.lastPathComponent)")
        return try withExtractedModel(url, registry: registry) { model, name in
            var graph = try (format.map { try registry.reader($0) } ?? detect(model, registry: registry)).read(
                model, options: options)
            graph.source = name
            return graph
        }
    }

    /// Extracts the archive `url` to a private temporary directory and calls `body` with the single
    /// model inside and its name as users see it (`archive#member`, or the archive for an HF
    /// directory at its root), then removes the directory. Errors `body` throws name that, not the
    /// temporary path, which is gone by the time anyone reads them.
    public static func withExtractedModel<T>(
        _ url: URL, registry: Registry = LatheBuiltins.registry, _ body: (URL, String) throws -> T
    ) throws -> T {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent(
            "lathe-archive-\(UUID().uuidString)")
        InterruptCleanup.register(scratch)
        defer {
            try? FileManager.default.removeItem(at: scratch)
            InterruptCleanup.unregister(scratch)
        }
        // Only what a model can be made of is written out (weights, JSON configs and tokenizers): a
        // README, a dataset or a decompression bomb beside the model costs no disk.
        try Archive.extract(url, to: scratch) { member in
            let name = member.lowercased()
            return Self.modelFileExtensions.contains { name.hasSuffix("." + $0) }
        }
        let model = try locateModel(in: scratch, archive: url, registry: registry)
        let name = url.path + (model == scratch ? "" : "#" + model.path.dropFirst(scratch.path.count + 1))
        do {
            return try body(model, name)
        } catch {
            let message = (error as? any LocalizedError)?.errorDescription ?? "\(error)"
            throw ArchivedModelError(
                message: message.replacingOccurrences(of: scratch.path + "/", with: url.path + "#")
                    .replacingOccurrences(of: scratch.path, with: url.path),
                cause: error)
        }
    }

    /// The archive's root if it is an HF directory, else the one model found at the shallowest level
    /// below it (up to four levels: `model/m.gguf`, an HF cache's `models--ORG--NAME/snapshots/REV`).
    /// A model is a file named for a model format or a directory a reader recognises; names that are
    /// links to one file count once.
    private static func locateModel(in root: URL, archive: URL, registry: Registry) throws -> URL {
        if FileManager.default.fileExists(atPath: root.appendingPathComponent("config.json").path) { return root }
        let fileManager = FileManager.default
        var level = [root]
        var candidates: [URL] = []
        for _ in 0..<4 where candidates.isEmpty && !level.isEmpty {
            var below: [URL] = []
            for directory in level {
                let entries =
                    (try? fileManager.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? []
                for entry in entries.sorted(by: { $0.path < $1.path }) where !entry.lastPathComponent.hasPrefix(".") {
                    var isDirectory: ObjCBool = false
                    guard fileManager.fileExists(atPath: entry.path, isDirectory: &isDirectory) else { continue }
                    if isDirectory.boolValue {
                        if (try? detect(entry, registry: registry)) != nil {
                            candidates.append(entry)
                        } else {
                            below.append(entry)
                        }
                    } else if Self.modelExtensions.contains(entry.pathExtension.lowercased()),
                        (try? detect(entry, registry: registry)) != nil
                    {
                        candidates.append(entry)
                    }
                }
            }
            level = below
        }
        // A hard or symbolic link is another name for a model already found.
        var seen: Set<String> = []
        candidates = candidates.filter { url in
            let file = Self.fileID(url)
            return seen.insert(file.isEmpty ? url.resolvingSymlinksInPath().path : file).inserted
        }
        guard candidates.count == 1 else {
            let names = candidates.map { String($0.path.dropFirst(root.path.count + 1)) }
            throw LatheError.fileAccess(
                path: archive.path,
                reason: candidates.isEmpty
                    ? "the archive holds no model file or HF directory (Lathe extracts members named *.gguf, *.safetensors, *.lpack, *.json and *.jinja)"
                    : "the archive holds \(candidates.count) models (\(names.joined(separator: ", "))); extract it and pick one"
            )
        }
        return candidates[0]
    }

    /// The device and inode of a regular file, followed through links (one file under two names
    /// gives one value); empty for anything else.
    private static func fileID(_ url: URL) -> String {
        var status = stat()
        guard stat(url.path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else { return "" }
        return "\(status.st_dev):\(status.st_ino)"
    }
}

/// A reader's error about a model inside an archive, its paths rewritten to `archive#member`; the
/// reader's own error is `cause`, for a caller that matches on it.
public struct ArchivedModelError: LocalizedError, CustomStringConvertible {
    public var message: String
    public var cause: any Error
    public var errorDescription: String? { message }
    public var description: String { message }
}

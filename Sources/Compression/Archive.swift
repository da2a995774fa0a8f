import CArchive
import Foundation

/// The archive containers Lathe reads and writes.
public enum ArchiveFormat: String, CaseIterable, Sendable {
    case tar
    case tarZstd = "tar.zst"
    case zip

    /// Infers the format from a file name (`.tar`, `.tar.zst`/`.tzst`, `.zip`).
    public init?(fileName: String) {
        let name = fileName.lowercased()
        if name.hasSuffix(".tar.zst") || name.hasSuffix(".tzst") {
            self = .tarZstd
        } else if name.hasSuffix(".tar") {
            self = .tar
        } else if name.hasSuffix(".zip") {
            self = .zip
        } else {
            return nil
        }
    }
}

/// One member of an archive as listed by `Archive.list`.
public struct ArchiveMember: Equatable, Sendable {
    public enum Kind: Equatable, Sendable {
        case file
        case directory
        case symbolicLink(target: String)
        case hardLink(target: String)
    }
    public var path: String
    public var kind: Kind
    public var size: Int

    public init(path: String, kind: Kind, size: Int) {
        self.path = path
        self.kind = kind
        self.size = size
    }
}

/// Reading and writing tar, tar.zst and zip archives through libarchive.
///
/// Extraction never writes outside the destination: absolute member paths, `..` components, links
/// whose target leaves the root, and paths or link targets that pass through a symbolic link
/// (`ArchiveLinkGuard`) are refused before anything of that member is written.
public enum Archive {
    /// Lists the members without extracting anything; unsafe members are reported as errors.
    public static func list(_ url: URL) throws -> [ArchiveMember] {
        var members: [ArchiveMember] = []
        try read(url) { member, _ in members.append(member) }
        return members
    }

    /// Extracts the members under `destination` (created if needed) and returns their relative paths.
    /// Files for which `include` is false are skipped (their data is never written), and so are links
    /// to them, unless the link's own name is included: then the file it reaches, through chains of
    /// links, is written too (an HF cache's `snapshots/REV/model.safetensors -> ../../blobs/SHA`).
    /// Directories and symbolic links are always made. A file repeated in the archive takes the last
    /// member's data, as tar does.
    @discardableResult
    public static func extract(
        _ url: URL, to destination: URL, include: (String) -> Bool = { _ in true }
    ) throws -> [String] {
        try FileManager.default.createDirectory(at: destination, withIntermediateDirectories: true)
        var extracted: [String] = []
        // Symbolic links are made last, once every member has been checked against every link
        // (`ArchiveLinkGuard.finish`): until then nothing on disk points anywhere.
        var symbolicLinks: [(path: String, target: String)] = []
        var skipped: Set<String> = []
        // Hard links to skipped files, in archive order (each names an earlier member), and which
        // of them are wanted by their own name.
        var skippedHardLinks: [ArchiveMember] = []
        var wanted: Set<String> = []
        try read(url) { member, readData in
            let key = ArchiveLinkGuard.normalized(member.path)
            switch member.kind {
            case .file where !include(member.path):
                skipped.insert(key)
                return
            case .hardLink(let linkTarget) where skipped.contains(ArchiveLinkGuard.normalized(linkTarget)):
                skippedHardLinks.append(member)
                skipped.insert(key)
                if include(member.path) { wanted.insert(key) }
                return
            case .symbolicLink(let linkTarget):
                symbolicLinks.append((member.path, linkTarget))
            default: break
            }
            try extractMember(member, readData, into: destination, archive: url)
            extracted.append(member.path)
        }
        var linksByPath: [String: (path: String, target: String)] = [:]
        for link in symbolicLinks { linksByPath[ArchiveLinkGuard.normalized(link.path)] = link }
        for link in symbolicLinks where include(link.path) {
            if let reached = reachedByLink(link, through: linksByPath), skipped.contains(reached) {
                wanted.insert(reached)
            }
        }
        // A wanted hard link needs the member it names, and so on down to a file.
        var hardLinkTargets: [String: String] = [:]
        for link in skippedHardLinks {
            if case .hardLink(let target) = link.kind {
                hardLinkTargets[ArchiveLinkGuard.normalized(link.path)] = ArchiveLinkGuard.normalized(target)
            }
        }
        var pending = Array(wanted)
        while let next = pending.popLast() {
            if let target = hardLinkTargets[next], wanted.insert(target).inserted { pending.append(target) }
        }
        if !wanted.isEmpty {
            // Rare, so a second pass over the archive rather than holding skipped data in the first.
            try read(url) { member, readData in
                guard member.kind == .file, wanted.contains(ArchiveLinkGuard.normalized(member.path)) else { return }
                try extractMember(member, readData, into: destination, archive: url)
                extracted.append(member.path)
            }
            for link in skippedHardLinks where wanted.contains(ArchiveLinkGuard.normalized(link.path)) {
                try extractMember(link, { _ in }, into: destination, archive: url)
                extracted.append(link.path)
            }
        }
        for link in symbolicLinks {
            let path = destination.appendingPathComponent(link.path).path
            do {
                try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: link.target)
            } catch {
                throw CompressionError.archive(
                    path: url.path,
                    reason: "member '\(link.path)': cannot make the link: an earlier member has its name")
            }
        }
        return extracted
    }

    /// Writes one member that is not a symbolic link under `destination`.
    private static func extractMember(
        _ member: ArchiveMember, _ readData: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void,
        into destination: URL, archive url: URL
    ) throws {
        let fileManager = FileManager.default
        let target = destination.appendingPathComponent(member.path)
        do {
            try fileManager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
            switch member.kind {
            case .directory:
                try fileManager.createDirectory(at: target, withIntermediateDirectories: true)
            case .file:
                try writeFile(at: target.path, readData)
            case .symbolicLink:
                break
            case .hardLink(let linkTarget):
                // A regular file already extracted (`ArchiveLinkGuard`): link(2), never a copy.
                try fileManager.linkItem(at: destination.appendingPathComponent(linkTarget), to: target)
            }
        } catch let error as CompressionError {
            throw error
        } catch {
            // Foundation's message names the scratch directory, which the user never chose.
            throw CompressionError.archive(
                path: url.path, reason: "member '\(member.path)': cannot extract it: \(error.localizedDescription)")
        }
    }

    /// The root-relative path `link` finally names, through chains of the archive's symbolic links
    /// (`linkTargets`, by normalized path); nil when a target leaves the root. A cycle ends at the hop
    /// limit.
    private static func reachedByLink(
        _ link: (path: String, target: String), through linkTargets: [String: (path: String, target: String)]
    ) -> String? {
        var current = link
        for _ in 0..<40 {
            guard let resolved = ArchiveLinkGuard.resolve(current.target, from: current.path) else { return nil }
            guard let next = linkTargets[resolved] else { return resolved }
            current = next
        }
        return nil
    }

    /// Writes the files under `directory` (recursively, sorted, relative paths) into a new archive.
    public static func create(_ url: URL, format: ArchiveFormat, fromDirectory directory: URL) throws {
        let base = directory.standardizedFileURL.path
        guard let walker = FileManager.default.enumerator(atPath: base) else {
            throw CompressionError.archive(path: base, reason: "cannot list directory")
        }
        let relative = walker.compactMap { $0 as? String }.sorted()
        try create(url, format: format, files: relative.map { ($0, directory.appendingPathComponent($0)) })
    }

    /// Writes `files` (member path, source file) into a new archive at `url`.
    public static func create(_ url: URL, format: ArchiveFormat, files: [(member: String, source: URL)]) throws {
        let writer = archive_write_new()
        defer { archive_write_free(writer) }
        let path = url.path
        func check(_ status: Int32) throws {
            if status < ARCHIVE_WARN {
                throw CompressionError.archive(path: path, reason: String(cString: archive_error_string(writer)))
            }
        }
        switch format {
        case .tar: try check(archive_write_set_format_pax_restricted(writer))
        case .tarZstd:
            try check(archive_write_set_format_pax_restricted(writer))
            try check(archive_write_add_filter_zstd(writer))
        case .zip: try check(archive_write_set_format_zip(writer))
        }
        try check(archive_write_open_filename(writer, path))
        let entry = archive_entry_new()
        defer { archive_entry_free(entry) }
        for (member, source) in files {
            try validate(member: member, archive: path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory) else {
                throw CompressionError.archive(path: source.path, reason: "no such file")
            }
            archive_entry_clear(entry)
            archive_entry_set_pathname(entry, member)
            archive_entry_set_perm(entry, isDirectory.boolValue ? 0o755 : 0o644)
            archive_entry_set_mtime(entry, 0, 0)  // reproducible archives: no timestamps
            if isDirectory.boolValue {
                archive_entry_set_filetype(entry, 0o040000)
                archive_entry_set_size(entry, 0)
                try check(archive_write_header(writer, entry))
                continue
            }
            let data = try Data(contentsOf: source, options: .alwaysMapped)
            archive_entry_set_filetype(entry, 0o100000)
            archive_entry_set_size(entry, Int64(data.count))
            try check(archive_write_header(writer, entry))
            try data.withUnsafeBytes { bytes in
                var offset = 0
                while offset < bytes.count {
                    let written = archive_write_data(writer, bytes.baseAddress! + offset, bytes.count - offset)
                    if written < 0 { try check(Int32(written)) }
                    offset += written
                }
            }
        }
        try check(archive_write_close(writer))
    }

    /// A new file at `path` holding the member's data; an earlier member's regular file of that name
    /// is replaced (removed first), anything else there refuses it.
    private static func writeFile(
        at path: String, _ readData: (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void
    ) throws {
        // O_EXCL: never written through whatever is at the path, only into a new file.
        var descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        var existing = stat()
        if descriptor < 0, errno == EEXIST, lstat(path, &existing) == 0, (existing.st_mode & S_IFMT) == S_IFREG,
            unlink(path) == 0
        {
            descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        }
        guard descriptor >= 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSLocalizedDescriptionKey: String(cString: strerror(errno))])
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        try readData { chunk in try handle.write(contentsOf: Data(chunk)) }
        try handle.close()
    }

    // MARK: - Reading

    /// Calls `body` for each member with a function that streams that member's data.
    private static func read(
        _ url: URL,
        _ body: (ArchiveMember, (_ sink: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> Void
    ) throws {
        let path = url.path
        let reader = archive_read_new()
        defer { archive_read_free(reader) }
        archive_read_support_format_tar(reader)
        archive_read_support_format_zip(reader)
        archive_read_support_filter_zstd(reader)
        archive_read_support_filter_none(reader)
        func failure() -> CompressionError {
            .archive(
                path: path, reason: archive_error_string(reader).map { String(cString: $0) } ?? "unreadable archive")
        }
        // libarchive would open a FIFO and wait for a writer; only regular files are archives here.
        var status = stat()
        guard stat(path, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            throw CompressionError.archive(path: path, reason: "not a regular file")
        }
        guard archive_read_open_filename(reader, path, 1 << 16) == ARCHIVE_OK else { throw failure() }
        var entry: OpaquePointer?
        var links = ArchiveLinkGuard(archive: path)
        while true {
            let status = archive_read_next_header(reader, &entry)
            if status == ARCHIVE_EOF { break }
            guard status >= ARCHIVE_WARN, let entry else { throw failure() }
            guard let rawName = archive_entry_pathname(entry) else { throw failure() }
            let name = String(cString: rawName)
            let member = try describe(entry, name: name, archive: path)
            try links.admit(member)
            try body(member) { sink in
                var block: UnsafeRawPointer?
                var size = 0
                var offset: Int64 = 0
                while true {
                    let result = archive_read_data_block(reader, &block, &size, &offset)
                    if result == ARCHIVE_EOF { break }
                    // A warning here is damage (a zip member's CRC does not match): never extracted.
                    guard result == ARCHIVE_OK else {
                        throw CompressionError.archive(
                            path: path,
                            reason: "member '\(name)': "
                                + (archive_error_string(reader).map { String(cString: $0) } ?? "unreadable data"))
                    }
                    if size > 0, let block { try sink(UnsafeRawBufferPointer(start: block, count: size)) }
                }
            }
        }
        try links.finish()
    }

    private static func describe(_ entry: OpaquePointer, name: String, archive: String) throws -> ArchiveMember {
        try validate(member: name, archive: archive)
        let size = Int(archive_entry_size(entry))
        if let hardLink = archive_entry_hardlink(entry) {
            let target = String(cString: hardLink)
            try validate(member: target, archive: archive)
            return ArchiveMember(path: name, kind: .hardLink(target: target), size: 0)
        }
        switch archive_entry_filetype(entry) {
        case 0o100000:
            return ArchiveMember(path: name, kind: .file, size: size)
        case 0o040000:
            return ArchiveMember(path: name, kind: .directory, size: 0)
        case 0o120000:
            let target = archive_entry_symlink(entry).map { String(cString: $0) } ?? ""
            try validate(link: target, from: name, archive: archive)
            return ArchiveMember(path: name, kind: .symbolicLink(target: target), size: 0)
        default:
            throw CompressionError.unsupportedMember(archive: archive, member: name, kind: "special file")
        }
    }

    /// Member names must be relative and stay inside the root.
    static func validate(member: String, archive: String) throws {
        if member.isEmpty {
            throw CompressionError.unsafeMember(archive: archive, member: member, reason: "empty name")
        }
        if member.hasPrefix("/") {
            throw CompressionError.unsafeMember(archive: archive, member: member, reason: "absolute path")
        }
        if member.utf8.split(separator: UInt8(ascii: "/")).contains(where: { $0.elementsEqual("..".utf8) }) {
            throw CompressionError.unsafeMember(
                archive: archive, member: member, reason: "'..' component escapes the root")
        }
    }

    /// A symbolic link's target must be relative; whether it stays inside the root is decided by
    /// `ArchiveLinkGuard`'s walk of it from the link's own directory, which also knows the other links.
    static func validate(link target: String, from member: String, archive: String) throws {
        if target.hasPrefix("/") || target.isEmpty {
            throw CompressionError.unsafeMember(
                archive: archive, member: member, reason: "link target '\(target)' is absolute")
        }
    }
}

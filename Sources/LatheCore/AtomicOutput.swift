import Foundation

/// Writes an output at a temporary sibling path and renames it into place only when complete, so an
/// error or a kill never leaves a partial file (or directory) at the destination. An interrupt
/// (SIGINT, SIGTERM, SIGHUP) removes the temporary too (`InterruptCleanup`).
public struct AtomicOutput: Sendable {
    /// What the output is: one file, or a directory of files (an HF model, safetensors shards).
    public enum Kind: Sendable { case file, directory }

    public let destination: URL
    /// Where to write; becomes `destination` on `commit()`.
    public let temporary: URL

    /// Refuses an existing destination unless `overwrite` is set (see `check`).
    public init(destination: URL, overwrite: Bool, kind: Kind = .file) throws(LatheError) {
        self.destination = destination
        try Self.check(destination, overwrite: overwrite, kind: kind)
        let parent = destination.deletingLastPathComponent()
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        temporary = parent.appendingPathComponent(".\(destination.lastPathComponent).\(token).tmp")
        InterruptCleanup.register(temporary)
    }

    /// What `init` refuses, checkable before long work whose result will go to `destination`: an
    /// existing destination without `overwrite`, a directory that is missing or not writable. Even
    /// with `overwrite`, a directory is replaced only by a directory output and only when it holds
    /// nothing but a model's files: `--force` once replaced any directory named by mistake (`-o .`).
    public static func check(_ destination: URL, overwrite: Bool, kind: Kind = .file) throws(LatheError) {
        let fileManager = FileManager.default
        var existingIsDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: destination.path, isDirectory: &existingIsDirectory) {
            guard overwrite else {
                throw .fileAccess(path: destination.path, reason: "already exists; pass --force to overwrite it")
            }
            if existingIsDirectory.boolValue {
                guard kind == .directory else {
                    throw .fileAccess(
                        path: destination.path, reason: "is a directory; this output is one file: name the file")
                }
                try requireModelDirectory(destination)
            } else if kind == .directory {
                throw .fileAccess(
                    path: destination.path, reason: "is a file; this output is a directory: name another path")
            }
        }
        let parent = destination.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: parent.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .fileAccess(path: parent.path, reason: "output directory does not exist")
        }
        // Permission bits say yes to root everywhere, even where nothing can be made (/proc): make and
        // remove an empty file instead, as the output's temporary will be made.
        let probe = parent.appendingPathComponent(".lathe-probe-\(UInt64.random(in: 0...UInt64.max))").path
        let descriptor = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw .fileAccess(
                path: parent.path, reason: "output directory is not writable: " + String(cString: strerror(errno)))
        }
        close(descriptor)
        unlink(probe)
    }

    /// Temporaries and set-aside directories of `destination` that a killed run left beside it
    /// (`.NAME.TOKEN.tmp`, `.NAME.old.N`): hidden, and holding a whole output's space on disk.
    public static func leftovers(beside destination: URL) -> [URL] {
        let parent = destination.deletingLastPathComponent()
        let name = destination.lastPathComponent
        let names = (try? FileManager.default.contentsOfDirectory(atPath: parent.path)) ?? []
        let pattern = #/\.(.+)\.(?:[0-9a-z]+\.tmp|old\.[0-9]+)/#
        return names.sorted().filter { $0.wholeMatch(of: pattern)?.output.1 == name[...] }
            .map { parent.appendingPathComponent($0) }
    }

    /// The files an HF directory or a set of safetensors shards is made of: what `--force` may delete.
    static let modelDirectoryFiles: Set<String> = [
        "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "model.safetensors", "model.safetensors.index.json",
    ]

    /// Refuses a directory holding anything but `modelDirectoryFiles` and `model-NNNNN-of-NNNNN.safetensors`
    /// shards: a folder of checkpoints, results or anything else named by mistake is never replaced.
    static func requireModelDirectory(_ directory: URL) throws(LatheError) {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? ["(unreadable)"]
        let shard = #/model-\d{5}-of-\d{5}\.safetensors/#
        for name in names.sorted() {
            var isDirectory: ObjCBool = false
            let path = directory.appendingPathComponent(name).path
            let isModelFile = modelDirectoryFiles.contains(name) || name.wholeMatch(of: shard) != nil
            if !isModelFile || !FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
                || isDirectory.boolValue
            {
                throw .fileAccess(
                    path: directory.path,
                    reason:
                        "is a directory holding '\(name)', which is not one of an HF directory's or safetensors shards' files; --force replaces only those"
                )
            }
        }
    }

    /// Moves the finished output into place (replacing an existing one).
    public func commit() throws(LatheError) {
        let fileManager = FileManager.default
        defer { InterruptCleanup.unregister(temporary) }
        if rename(temporary.path, destination.path) == 0 { return }
        // rename(2) cannot replace a non-empty directory. Once the old one is checked again (a long
        // recipe gives time for files to arrive there), the two trade places in one step, so the
        // destination is never missing; the old one, now at the temporary path, is then removed
        // (and by the interrupt cleanup if a signal comes first).
        var isDirectory: ObjCBool = false
        if fileManager.fileExists(atPath: destination.path, isDirectory: &isDirectory), isDirectory.boolValue {
            try Self.requireModelDirectory(destination)
            if let exchange = Self.renameExchange,
                exchange(AT_FDCWD, temporary.path, AT_FDCWD, destination.path, 2) == 0
            {
                try? fileManager.removeItem(at: temporary)
                return
            }
        }
        // Where the file system cannot exchange: the old one moves aside first.
        let aside = destination.deletingLastPathComponent().appendingPathComponent(
            ".\(destination.lastPathComponent).old.\(UInt32.random(in: 0...UInt32.max))")
        do {
            try fileManager.moveItem(at: destination, to: aside)
            try fileManager.moveItem(at: temporary, to: destination)
            try? fileManager.removeItem(at: aside)
        } catch {
            throw .fileAccess(
                path: destination.path,
                reason: "cannot move the finished output into place: \(error.localizedDescription)")
        }
    }

    /// Linux's renameat2(2), for RENAME_EXCHANGE (2).
    private static let renameExchange = linuxFunction(
        "renameat2",
        as: (@convention(c) (Int32, UnsafePointer<CChar>, Int32, UnsafePointer<CChar>, UInt32) -> Int32).self)

    /// Removes whatever was written at the temporary path.
    public func discard() {
        try? FileManager.default.removeItem(at: temporary)
        InterruptCleanup.unregister(temporary)
    }

    /// Runs `body` with the temporary URL, committing on success and discarding on error.
    public func run<R>(_ body: (URL) throws -> R) throws -> R {
        do {
            let result = try body(temporary)
            try commit()
            return result
        } catch {
            discard()
            throw naming(error)
        }
    }

    /// The error as users should read it: about the destination, not the temporary sibling (which
    /// is gone), and as one line rather than a Foundation error's dump.
    func naming(_ error: any Error) -> any Error {
        if case .fileAccess(let path, let reason) = error as? LatheError, path.hasPrefix(temporary.path) {
            return LatheError.fileAccess(path: destination.path + path.dropFirst(temporary.path.count), reason: reason)
        }
        if case .inTensor(let name, let underlying) = error as? LatheError,
            let renamed = naming(underlying) as? LatheError
        {
            return LatheError.inTensor(name, renamed)
        }
        if let cocoa = error as? CocoaError {
            // The system's reason ("No such file or directory") says more than Foundation's sentence,
            // and the file inside a directory output says more than the directory.
            let reason = systemReason(of: cocoa) ?? Self.systemWording[cocoa.code] ?? cocoa.localizedDescription
            var path = destination.path
            if let file = cocoa.filePath ?? cocoa.url?.path, file.hasPrefix(temporary.path) {
                path += file.dropFirst(temporary.path.count)
            }
            return LatheError.fileAccess(path: path, reason: "cannot write it: " + reason)
        }
        return error
    }
}

extension AtomicOutput {
    /// Foundation's write errors that carry no system error, in the system's words (as the other
    /// writers' errors read).
    static let systemWording: [CocoaError.Code: String] = [
        .fileWriteOutOfSpace: String(cString: strerror(ENOSPC)),
        .fileWriteNoPermission: String(cString: strerror(EACCES)),
        .fileWriteVolumeReadOnly: String(cString: strerror(EROFS)),
        .fileWriteFileExists: String(cString: strerror(EEXIST)),
    ]
}

/// The system's reason under a Foundation file error ("No such file or directory"), when it has one.
public func systemReason(of error: any Error) -> String? {
    guard let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? NSError,
        underlying.domain == NSPOSIXErrorDomain
    else { return nil }
    return String(cString: strerror(Int32(underlying.code)))
}

import Foundation

/// Writes an output at a temporary sibling path and renames it into place only when complete, so an
/// error or a kill never leaves a partial file (or directory) at the destination. An interrupt
/// (SIGINT, SIGTERM, SIGHUP) removes the temporary too (`InterruptCleanup`).
public struct AtomicOutput: Sendable {
    public let destination: URL
    /// Where to write; becomes `destination` on `commit()`.
    public let temporary: URL

    /// Refuses an existing destination unless `overwrite` is set.
    public init(destination: URL, overwrite: Bool) throws(LatheError) {
        self.destination = destination
        try Self.check(destination, overwrite: overwrite)
        let parent = destination.deletingLastPathComponent()
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        temporary = parent.appendingPathComponent(".\(destination.lastPathComponent).\(token).tmp")
        InterruptCleanup.register(temporary)
    }

    /// What `init` refuses, checkable before long work whose result will go to `destination`: an
    /// existing destination without `overwrite`, a directory that is missing or not writable.
    public static func check(_ destination: URL, overwrite: Bool) throws(LatheError) {
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: destination.path), !overwrite {
            throw .fileAccess(path: destination.path, reason: "already exists; pass --force to overwrite it")
        }
        let parent = destination.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: parent.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .fileAccess(path: parent.path, reason: "output directory does not exist")
        }
        guard fileManager.isWritableFile(atPath: parent.path) else {
            throw .fileAccess(path: parent.path, reason: "output directory is not writable")
        }
    }

    /// Moves the finished output into place (replacing an existing one).
    public func commit() throws(LatheError) {
        let fileManager = FileManager.default
        defer { InterruptCleanup.unregister(temporary) }
        if rename(temporary.path, destination.path) == 0 { return }
        // rename(2) cannot replace a non-empty directory: move the old one aside first.
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
        if let cocoa = error as? CocoaError {
            return LatheError.fileAccess(path: destination.path, reason: cocoa.localizedDescription)
        }
        return error
    }
}

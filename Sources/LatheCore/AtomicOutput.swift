import Foundation

/// Writes an output at a temporary sibling path and renames it into place only when complete, so an
/// error or a kill never leaves a partial file (or directory) at the destination.
public struct AtomicOutput: Sendable {
    public let destination: URL
    /// Where to write; becomes `destination` on `commit()`.
    public let temporary: URL

    /// Refuses an existing destination unless `overwrite` is set.
    public init(destination: URL, overwrite: Bool) throws(LatheError) {
        self.destination = destination
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: destination.path), !overwrite {
            throw .fileAccess(path: destination.path, reason: "already exists; pass --force to overwrite it")
        }
        let parent = destination.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard fileManager.fileExists(atPath: parent.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .fileAccess(path: parent.path, reason: "output directory does not exist")
        }
        let token = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        temporary = parent.appendingPathComponent(".\(destination.lastPathComponent).\(token).tmp")
    }

    /// Moves the finished output into place (replacing an existing one).
    public func commit() throws(LatheError) {
        let fileManager = FileManager.default
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
    }

    /// Runs `body` with the temporary URL, committing on success and discarding on error.
    public func run<R>(_ body: (URL) throws -> R) throws -> R {
        do {
            let result = try body(temporary)
            try commit()
            return result
        } catch {
            discard()
            throw error
        }
    }
}

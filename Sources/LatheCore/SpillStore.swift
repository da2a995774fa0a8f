import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where a pipeline keeps the tensors its passes compute, when memory should not hold them all.
///
/// Each spilled tensor is written to its own file beside the output, mapped back, and unlinked at
/// once: the mapping keeps the data alive, nothing is left on disk when the process ends (even when
/// it is killed), and the kernel can drop the clean pages whenever memory is short. A data-free
/// recipe on a model far larger than RAM then needs about one tensor of memory per pass, not the
/// whole model.
public final class SpillStore: Sendable {
    public let directory: URL
    /// Tensors smaller than this stay in memory: spilling them would only cost system calls.
    public let minimumBytes: Int
    private let prefix: String

    /// `prefix` starts each file's name; ending it in the output's name keeps the files recognisable.
    public init(directory: URL, prefix: String, minimumBytes: Int = 1 << 20) {
        self.directory = directory
        self.prefix = prefix
        self.minimumBytes = minimumBytes
    }

    /// The values as storage: mapped from a spill file when large enough, otherwise in memory.
    public func store<Element: BitwiseCopyable>(_ values: [Element]) throws -> TensorStorage {
        let byteCount = values.count * MemoryLayout<Element>.stride
        guard byteCount >= minimumBytes else { return TensorStorage(values: values) }
        let url = directory.appendingPathComponent(".\(prefix).spill-\(UUID().uuidString).tmp")
        let descriptor = open(url.path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw LatheError.fileAccess(
                path: url.path, reason: "cannot create a spill file: \(String(cString: strerror(errno)))")
        }
        defer { close(descriptor) }
        // Unlinked before anything is written: the descriptor, then the mapping, keep the data, and a
        // kill at any later point leaves nothing behind.
        unlink(url.path)
        try values.withUnsafeBytes { bytes in
            var written = 0
            while written < bytes.count {
                let count = write(descriptor, bytes.baseAddress! + written, bytes.count - written)
                guard count > 0 else {
                    throw LatheError.fileAccess(
                        path: url.path, reason: "cannot write a spill file: \(String(cString: strerror(errno)))")
                }
                written += count
            }
        }
        let file = try MappedFile(descriptor: descriptor, path: url.path)
        return try TensorStorage(file: file, offset: 0, length: byteCount)
    }
}

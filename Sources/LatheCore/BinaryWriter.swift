import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A buffered little-endian writer to a file, for format writers that stream tensor by tensor.
public final class BinaryWriter {
    private let handle: FileHandle
    private let path: String
    private var buffer: [UInt8] = []
    private let capacity = 1 << 20
    /// Bytes written so far (buffered or flushed).
    public private(set) var position = 0
    /// Bytes handed to the kernel, and where the stretch not yet sent towards the disk starts.
    private var onDisk = 0
    private var writebackStart = 0
    private var reserved = 0
    private static let writebackStride = 16 << 20

    /// Creates (or truncates) the file at `url`.
    public init(creating url: URL) throws {
        path = url.path
        // open(2) rather than FileManager.createFile, whose false hides why (a full table of open
        // files read as "check the directory exists").
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o666)
        guard descriptor >= 0 else {
            throw LatheError.fileAccess(
                path: url.path, reason: "cannot create file: " + String(cString: strerror(errno)))
        }
        handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        buffer.reserveCapacity(capacity)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try writeDirectly(bytes)
        } else {
            buffer.append(contentsOf: bytes)
        }
        position += bytes.count
    }

    public func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in try write(raw) }
    }

    public func write<T: FixedWidthInteger>(_ value: T) throws {
        try withUnsafeBytes(of: value.littleEndian) { raw in try write(raw) }
    }

    /// Writes zero bytes up to the next multiple of `alignment`.
    public func pad(to alignment: Int) throws {
        let padding = (alignment - position % alignment) % alignment
        if padding > 0 { try write([UInt8](repeating: 0, count: padding)) }
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeDirectly($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    /// write(2) straight from the caller's memory (FileHandle would copy large pieces into a `Data`
    /// first), retrying short writes and interruptions.
    private func writeDirectly(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let result = systemWrite(handle.fileDescriptor, bytes.baseAddress! + done, bytes.count - done)
            if result < 0 {
                if errno == EINTR { continue }
                throw LatheError.fileAccess(path: path, reason: String(cString: strerror(errno)))
            }
            done += result
        }
        onDisk += bytes.count
        if onDisk - writebackStart >= Self.writebackStride {
            // Starts writing this stretch back now (POSIX_FADV_DONTNEED begins writeback of dirty
            // pages and drops only clean ones), so the disk works while the next tensors are
            // converted and `close`'s fsync waits for the last stretch only.
            _ = posix_fadvise(
                handle.fileDescriptor, off_t(writebackStart), off_t(onDisk - writebackStart), POSIX_FADV_DONTNEED)
            writebackStart = onDisk
        }
    }

    /// Allocates the file's blocks for `totalBytes` up front, without changing its size. Writing into
    /// allocated blocks spares the file system a reservation per page (about a quarter of the kernel
    /// time of writing a large file on ext4). File systems without `fallocate` write as before. A disk
    /// without room for the whole output is an error now, before the tensors are converted (on a
    /// compressing file system that counts the output's uncompressed size).
    public func reserve(totalBytes: Int) throws(LatheError) {
        guard totalBytes > 0, let allocate = Self.fallocate else { return }
        let keepSize: Int32 = 1  // FALLOC_FL_KEEP_SIZE: the size grows only as bytes are written
        if allocate(handle.fileDescriptor, keepSize, 0, totalBytes) == 0 {
            reserved = totalBytes
            return
        }
        let reason = errno
        guard [ENOSPC, EDQUOT, EFBIG].contains(reason) else { return }
        throw .fileAccess(
            path: path, reason: "\(String(cString: strerror(reason))): the output needs \(totalBytes) bytes")
    }

    /// Linux's fallocate(2).
    private static let fallocate = linuxFunction(
        "fallocate", as: (@convention(c) (Int32, Int32, Int, Int) -> Int32).self)

    /// Flushes, syncs and closes the file.
    public func close() throws {
        try flush()
        if reserved > position {
            // Blocks allocated past the end (the writer wrote less than it reserved) are freed.
            _ = ftruncate(handle.fileDescriptor, off_t(position))
        }
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw LatheError.fileAccess(path: path, reason: error.localizedDescription)
        }
    }
}

/// write(2), named apart from the writer's own `write` methods.
private func systemWrite(_ descriptor: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    write(descriptor, bytes, count)
}

/// A C library function Swift's Glibc module does not export, looked up at run time; nil on other
/// systems, which do not have it.
func linuxFunction<Function>(_ name: String, as type: Function.Type) -> Function? {
    #if os(Linux)
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), name) else { return nil }
        return unsafeBitCast(symbol, to: type)
    #else
        return nil
    #endif
}

import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A read-only memory map of a whole file. The mapping lives as long as the object, and every
/// access is bounds-checked against the file's size.
public final class MappedFile: Sendable {
    public let path: String
    public let size: Int
    // The mapping is never written after creation, so sharing the pointer across threads is safe.
    private nonisolated(unsafe) let base: UnsafeRawPointer?

    public convenience init(path: String) throws(LatheError) {
        // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, before fstat
        // can refuse it as not a regular file. (It changes nothing for regular files.)
        let descriptor = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard descriptor >= 0 else {
            throw .fileAccess(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(descriptor) }
        try self.init(descriptor: descriptor, path: path)
    }

    /// Maps the whole file open at `descriptor` (which stays the caller's to close; the mapping
    /// outlives it). `path` names the file in messages; the file may already be unlinked.
    public init(descriptor: Int32, path: String) throws(LatheError) {
        self.path = path
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            throw .fileAccess(path: path, reason: String(cString: strerror(errno)))
        }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw .fileAccess(path: path, reason: "not a regular file")
        }
        size = Int(status.st_size)
        if size == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, size, PROT_READ, MAP_PRIVATE, descriptor, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw .fileAccess(path: path, reason: "cannot map file: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
        MappedRegions.add(UnsafeRawPointer(mapped), size: size, path: path)
    }

    deinit {
        guard let base else { return }
        MappedRegions.remove(base)
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }

    /// Borrowed access to `offset ..< offset + length`, refused if it runs past the end.
    public func withBytes<R>(
        offset: Int = 0, length: Int? = nil, _ body: (UnsafeRawBufferPointer) throws -> R
    ) throws -> R {
        let length = length ?? (size - offset)
        try checkRange(offset: offset, length: length)
        guard let base, length > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base + offset, count: length))
    }

    /// Tells the kernel the pages of this range are not needed now. The mapping is private and never
    /// written, so a later access simply reads them from the file again; this only bounds resident memory
    /// while a large file streams through.
    public func dropCachedPages(offset: Int, length: Int) {
        guard let base, length > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (offset + page - 1) / page * page
        let end = min(size, offset + length) / page * page
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, MADV_DONTNEED)
    }

    public func checkRange(offset: Int, length: Int) throws(LatheError) {
        let (end, overflow) = offset.addingReportingOverflow(length)
        guard offset >= 0, length >= 0, !overflow, end <= size else {
            throw .outOfBounds(path: path, offset: offset, length: length, size: size)
        }
    }
}

/// A tensor's bytes: a slice of a memory-mapped file (zero copy) or an owned buffer.
/// Immutable after creation, hence `Sendable`.
public final class TensorStorage: Sendable {
    private enum Backing {
        case mapped(MappedFile, offset: Int)
        /// A buffer allocated by this object and freed with it, so its address is stable.
        case owned(UnsafeRawBufferPointer)
    }
    // The owned buffer is written once in `init` and only read afterwards, so sharing it is safe.
    private nonisolated(unsafe) let backing: Backing
    public let byteCount: Int

    /// A bounds-checked view of `file[offset ..< offset + length]`.
    public init(file: MappedFile, offset: Int, length: Int) throws(LatheError) {
        try file.checkRange(offset: offset, length: length)
        backing = .mapped(file, offset: offset)
        byteCount = length
    }

    public convenience init(bytes: [UInt8]) {
        self.init(owning: bytes.withUnsafeBytes { Self.copy($0) }, count: bytes.count)
    }

    /// Takes ownership of `buffer` (allocated by `copy` or `allocateOwned`), of which the first
    /// `count` bytes are the data.
    init(owning buffer: UnsafeMutableRawBufferPointer, count: Int) {
        backing = .owned(UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
        byteCount = count
    }

    /// A buffer a later `init(owning:count:)` takes over: filled in place, it is never copied.
    static func allocateOwned(_ count: Int) -> UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer.allocate(byteCount: max(count, 1), alignment: 64)
    }

    /// One copy of `source` in a new 64-byte-aligned buffer (never empty, so it has an address).
    private static func copy(_ source: UnsafeRawBufferPointer) -> UnsafeMutableRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(source.count, 1), alignment: 64)
        if !source.isEmpty { buffer.copyMemory(from: source) }
        return buffer
    }

    deinit {
        if case .owned(let buffer) = backing, let base = buffer.baseAddress { base.deallocate() }
    }

    /// The first byte, valid for as long as this object lives (mapped and owned bytes never move),
    /// for kernels that keep pointers to weights across calls; nil when empty.
    public var baseAddress: UnsafeRawPointer? {
        withUnsafeBytes { $0.baseAddress }
    }

    /// Copies the values of a scalar array into a new owned buffer (native little-endian layout).
    public convenience init<T: BitwiseCopyable>(values: [T]) {
        self.init(owning: values.withUnsafeBytes { Self.copy($0) }, count: values.count * MemoryLayout<T>.stride)
    }

    /// Releases the resident pages behind a mapped tensor (see `MappedFile.dropCachedPages`); a no-op
    /// for owned buffers. Writers call it once a tensor is on disk.
    public func dropCachedPages() {
        if case .mapped(let file, let offset) = backing { file.dropCachedPages(offset: offset, length: byteCount) }
    }

    /// Whether the bytes are borrowed from a file mapping.
    public var isMapped: Bool {
        if case .mapped = backing { return true }
        return false
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        switch backing {
        case .mapped(let file, let offset):
            // The range was checked at creation; a failure here would be a logic error.
            return try file.withBytesUnchecked(offset: offset, length: byteCount, body)
        case .owned(let bytes):
            return try body(bytes)
        }
    }

    /// The elements as an array of `T` (copied; unaligned storage is fine).
    public func values<T: BitwiseCopyable>(as _: T.Type) -> [T] {
        withUnsafeBytes { raw in
            let count = raw.count / MemoryLayout<T>.stride
            return (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.stride, as: T.self) }
        }
    }
}

extension MappedFile {
    fileprivate func withBytesUnchecked<R>(
        offset: Int, length: Int, _ body: (UnsafeRawBufferPointer) throws -> R
    ) rethrows -> R {
        guard let base, length > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        return try body(UnsafeRawBufferPointer(start: base + offset, count: length))
    }
}

extension MappedFile {
    /// A whole (small) file's bytes: JSON and YAML files are read this way rather than with
    /// `Data(contentsOf:)`, which on Linux leaks 4 KiB for every empty file it reads (found by the
    /// fuzz harnesses' leak checker).
    public static func bytes(_ url: URL) throws(LatheError) -> [UInt8] {
        let file = try MappedFile(path: url.path)
        guard let base = file.base, file.size > 0 else { return [] }
        return [UInt8](UnsafeRawBufferPointer(start: base, count: file.size))
    }

    /// A whole file as text; nil when it is not valid UTF-8.
    public static func text(_ url: URL) throws(LatheError) -> String? {
        let bytes = try bytes(url)
        return UTF8Text.string(bytes)
    }
}

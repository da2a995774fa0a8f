import Foundation

/// A buffered little-endian writer to a file, for format writers that stream tensor by tensor.
public final class BinaryWriter {
    private let handle: FileHandle
    private let path: String
    private var buffer: [UInt8] = []
    private let capacity = 1 << 20
    /// Bytes written so far (buffered or flushed).
    public private(set) var position = 0

    /// Creates (or truncates) the file at `url`.
    public init(creating url: URL) throws {
        path = url.path
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw LatheError.fileAccess(
                path: url.path, reason: "cannot create file (check the directory exists and is writable)")
        }
        do {
            handle = try FileHandle(forWritingTo: url)
        } catch {
            throw LatheError.fileAccess(path: url.path, reason: error.localizedDescription)
        }
        buffer.reserveCapacity(capacity)
    }

    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            do { try handle.write(contentsOf: Data(bytes)) } catch {
                throw LatheError.fileAccess(path: path, reason: error.localizedDescription)
            }
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
        do { try handle.write(contentsOf: buffer) } catch {
            throw LatheError.fileAccess(path: path, reason: error.localizedDescription)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes, syncs and closes the file.
    public func close() throws {
        try flush()
        do {
            try handle.synchronize()
            try handle.close()
        } catch {
            throw LatheError.fileAccess(path: path, reason: error.localizedDescription)
        }
    }
}

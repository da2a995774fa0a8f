import Foundation
import LatheCore

/// What every harness shares: the input written to a file (the readers map files), and a model read
/// to the end, every tensor's bytes checked and its values decoded.
public enum FuzzFile {
    /// Tensors whose bytes or decoded values exceed this are listed but not decoded: a valid file may
    /// legitimately inflate far beyond its own size (a zstd member of zeros), and the harness's
    /// allocation limit is about the reader, not about a large but honest tensor.
    public static let decodeBudget = 8 << 20

    /// One directory per process, in memory when the machine has /dev/shm.
    public static let directory: URL = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let url = URL(fileURLWithPath: base).appendingPathComponent("lathe-fuzz-\(getpid())")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        atexit { try? FileManager.default.removeItem(at: FuzzFile.directory) }
        return url
    }()

    /// Writes the input to `name` in the harness's directory and hands over its URL.
    public static func withFile(
        _ data: UnsafePointer<UInt8>, _ size: Int, name: String, _ body: (URL) -> Void
    ) {
        let url = directory.appendingPathComponent(name)
        write(UnsafeRawBufferPointer(start: data, count: size), to: url)
        body(url)
    }

    /// Writes bytes with a plain `write(2)`, replacing the file.
    public static func write(_ bytes: UnsafeRawBufferPointer, to url: URL) {
        let fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        guard fd >= 0 else { fatalError("fuzz: cannot write \(url.path)") }
        var done = 0
        while done < bytes.count {
            let n = Foundation.write(fd, bytes.baseAddress! + done, bytes.count - done)
            guard n > 0 else { fatalError("fuzz: cannot write \(url.path)") }
            done += n
        }
        close(fd)
    }

    /// Runs a reader; a thrown error is the expected outcome for most inputs, so it is ignored. Any
    /// model it returns is read to the end.
    public static func exercise(_ read: () throws -> ModelGraph) {
        guard let graph = try? read() else { return }
        for tensor in graph.tensors {
            guard let bytes = try? tensor.info.byteCount(), bytes <= decodeBudget,
                let count = try? tensor.info.shape.elementCount(), count <= decodeBudget / 4
            else { continue }
            _ = try? tensor.forEachChunk { _ in }
            _ = try? TensorCodec.decode(tensor)
        }
        _ = graph.config
        _ = graph.tokenizer
    }
}

import CZstd

/// One-shot zstd compression and decompression.
public enum Zstd {
    /// The default compression level (zstd's own default).
    public static let defaultLevel = 3

    /// Compresses `input` into a single frame that records its content size.
    public static func compress(_ input: UnsafeRawBufferPointer, level: Int = defaultLevel) throws -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            ZSTD_compress(out.baseAddress, bound, input.baseAddress, input.count, Int32(level))
        }
        try check(written, "compress")
        output.removeSubrange(written...)
        return output
    }

    public static func compress(_ input: [UInt8], level: Int = defaultLevel) throws -> [UInt8] {
        try input.withUnsafeBytes { try compress($0, level: level) }
    }

    /// Decompresses one or more concatenated frames. `limit` caps the output so that a hostile frame
    /// header cannot make us allocate absurd amounts of memory.
    public static func decompress(_ input: UnsafeRawBufferPointer, limit: Int = 1 << 34) throws -> [UInt8] {
        let declared = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        let unknown = UInt64.max
        let error = UInt64.max - 1
        if declared == error {
            throw CompressionError.zstd(
                operation: "decompress", reason: "not a zstd frame (bad magic number or header)")
        }
        if declared != unknown, declared > UInt64(limit) { throw CompressionError.sizeLimitExceeded(limit: limit) }
        var output = [UInt8]()
        let stream = try ZstdDecompressionStream()
        try stream.decompress(input, limit: limit) { output.append(contentsOf: $0) }
        try stream.finish()
        return output
    }

    public static func decompress(_ input: [UInt8], limit: Int = 1 << 34) throws -> [UInt8] {
        try input.withUnsafeBytes { try decompress($0, limit: limit) }
    }

    @discardableResult
    static func check(_ code: Int, _ operation: String) throws -> Int {
        if ZSTD_isError(code) != 0 {
            throw CompressionError.zstd(operation: operation, reason: String(cString: ZSTD_getErrorName(code)))
        }
        return code
    }
}

/// Streaming compression: feed chunks, receive compressed chunks through a sink, then `finish`.
/// Not thread-safe: use one stream per task.
public final class ZstdCompressionStream {
    private let context: OpaquePointer
    private var buffer: [UInt8]

    public init(level: Int = Zstd.defaultLevel) throws {
        guard let context = ZSTD_createCCtx() else {
            throw CompressionError.zstd(operation: "create context", reason: "out of memory")
        }
        self.context = context
        buffer = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        try Zstd.check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, Int32(level)), "set level")
        try Zstd.check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), "enable checksum")
    }

    deinit { ZSTD_freeCCtx(context) }

    /// Compresses `chunk`; compressed bytes may or may not be emitted yet.
    public func compress(_ chunk: UnsafeRawBufferPointer, into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
        while input.pos < input.size {
            _ = try drive(&input, ZSTD_e_continue, sink)
        }
    }

    /// Ends the frame and emits everything still buffered.
    public func finish(into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        var input = ZSTD_inBuffer(src: nil, size: 0, pos: 0)
        while try drive(&input, ZSTD_e_end, sink) != 0 {}
    }

    private func drive(
        _ input: inout ZSTD_inBuffer, _ directive: ZSTD_EndDirective, _ sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws -> Int {
        try buffer.withUnsafeMutableBytes { out in
            var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
            let remaining = try Zstd.check(ZSTD_compressStream2(context, &output, &input, directive), "compress")
            if output.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: out[0..<output.pos])) }
            return remaining
        }
    }
}

/// Streaming decompression of one or more concatenated frames.
public final class ZstdDecompressionStream {
    private let context: OpaquePointer
    private var buffer: [UInt8]
    private var produced = 0
    private var midFrame = false

    public init() throws {
        guard let context = ZSTD_createDCtx() else {
            throw CompressionError.zstd(operation: "create context", reason: "out of memory")
        }
        self.context = context
        buffer = [UInt8](repeating: 0, count: ZSTD_DStreamOutSize())
    }

    deinit { ZSTD_freeDCtx(context) }

    /// Decompresses `chunk`, emitting output through `sink`; throws once more than `limit` bytes came out.
    public func decompress(
        _ chunk: UnsafeRawBufferPointer, limit: Int = .max, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        var input = ZSTD_inBuffer(src: chunk.baseAddress, size: chunk.count, pos: 0)
        var outputFull = true
        while input.pos < input.size || outputFull {
            let consumedBefore = input.pos
            let (hint, written, capacity) = try buffer.withUnsafeMutableBytes { out in
                var output = ZSTD_outBuffer(dst: out.baseAddress, size: out.count, pos: 0)
                let hint = try Zstd.check(ZSTD_decompressStream(context, &output, &input), "decompress")
                produced += output.pos
                if produced > limit { throw CompressionError.sizeLimitExceeded(limit: limit) }
                if output.pos > 0 { try sink(UnsafeRawBufferPointer(rebasing: out[0..<output.pos])) }
                return (hint, output.pos, out.count)
            }
            // A call that neither read nor wrote says nothing about frame state (after a finished
            // frame zstd reports the size of the next header it would like).
            if written > 0 || input.pos > consumedBefore { midFrame = hint != 0 }
            outputFull = written == capacity
        }
    }

    /// Throws if the input ended in the middle of a frame.
    public func finish() throws {
        if midFrame { throw CompressionError.truncatedFrame }
    }
}

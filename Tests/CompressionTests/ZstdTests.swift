import Compression
import Testing

@Suite("zstd")
struct ZstdTests {
    static func sample(_ count: Int) -> [UInt8] {
        // Compressible but not trivial: a repeating ramp with sparse noise.
        (0..<count).map { UInt8(truncatingIfNeeded: ($0 % 251) ^ ($0 % 97 == 0 ? 0x5A : 0)) }
    }

    @Test("one-shot round trip restores every byte", arguments: [0, 1, 4096, 1 << 20])
    func oneShot(count: Int) throws {
        let input = Self.sample(count)
        let compressed = try Zstd.compress(input)
        if count >= 4096 { #expect(compressed.count < count / 4) }
        #expect(try Zstd.decompress(compressed) == input)
    }

    @Test("streaming round trip in uneven chunks restores every byte")
    func streaming() throws {
        let input = Self.sample(3 << 20)
        var compressed: [UInt8] = []
        let compressor = try ZstdCompressionStream(level: 5)
        var offset = 0
        var chunk = 1
        while offset < input.count {
            let end = min(input.count, offset + chunk)
            try input[offset..<end].withUnsafeBytes {
                try compressor.compress($0) { compressed.append(contentsOf: $0) }
            }
            offset = end
            chunk = chunk * 3 + 7
        }
        try compressor.finish { compressed.append(contentsOf: $0) }

        var output: [UInt8] = []
        let decompressor = try ZstdDecompressionStream()
        for start in stride(from: 0, to: compressed.count, by: 1000) {
            try compressed[start..<min(compressed.count, start + 1000)].withUnsafeBytes {
                try decompressor.decompress($0) { output.append(contentsOf: $0) }
            }
        }
        try decompressor.finish()
        #expect(output == input)
        #expect(try Zstd.decompress(compressed) == input, "a streamed frame is also readable one-shot")
    }

    @Test("truncated and corrupt input are errors, not garbage")
    func badInput() throws {
        let compressed = try Zstd.compress(Self.sample(100_000))
        #expect(throws: CompressionError.truncatedFrame) {
            try Zstd.decompress(Array(compressed.prefix(compressed.count / 2)))
        }
        #expect(throws: CompressionError.self) { try Zstd.decompress([1, 2, 3, 4, 5, 6, 7, 8]) }
    }

    @Test("a declared size over the limit is refused before decompressing")
    func limit() throws {
        let compressed = try Zstd.compress(Self.sample(10_000))
        #expect(throws: CompressionError.sizeLimitExceeded(limit: 1000)) {
            try Zstd.decompress(compressed, limit: 1000)
        }
    }
}

import FormatGGUF
import Foundation
import LatheCore
import LatheTestSupport
import Testing

/// Raw GGUF bytes assembled field by field, independent of Lathe's writer, for crafting bad files.
struct RawGGUF {
    var bytes: [UInt8] = []

    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes += $0 } }
    mutating func string(_ s: String) {
        u64(UInt64(s.utf8.count))
        bytes += Array(s.utf8)
    }
    mutating func header(tensors: UInt64, keys: UInt64, version: UInt32 = 3) {
        bytes += Array("GGUF".utf8)
        u32(version)
        u64(tensors)
        u64(keys)
    }
    mutating func keyU32(_ key: String, _ value: UInt32) {
        string(key)
        u32(4)
        u32(value)
    }
    mutating func key(_ key: String, type: UInt32, _ write: (inout RawGGUF) -> Void) {
        string(key)
        u32(type)
        write(&self)
    }
    mutating func tensorInfo(_ name: String, ne: [UInt64], type: UInt32 = 0, offset: UInt64) {
        string(name)
        u32(UInt32(ne.count))
        for d in ne { u64(d) }
        u32(type)
        u64(offset)
    }
    mutating func padData(_ count: Int) {
        bytes += [UInt8](repeating: 0, count: (32 - bytes.count % 32) % 32)
        bytes += [UInt8](repeating: 0, count: count)
    }

    /// A valid file with two F32 tensors of 4 elements.
    static func valid() -> RawGGUF {
        var raw = RawGGUF()
        raw.header(tensors: 2, keys: 1)
        raw.keyU32("test.answer", 42)
        raw.tensorInfo("a", ne: [4], offset: 0)
        raw.tensorInfo("b", ne: [4], offset: 32)
        raw.padData(48)
        return raw
    }
}

@Suite("GGUF bad input")
struct GGUFBadInputTests {
    /// Writes `bytes`, reads them, and returns the error message (nil if the read succeeded).
    func message(_ bytes: [UInt8]) throws -> String? {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("bad.gguf")
        try Data(bytes).write(to: url)
        do {
            _ = try GGUFReader().read(url, options: ReadOptions(naming: .gguf))
            return nil
        } catch let error as GGUFError {
            #expect(error.path == url.path, "the message names the file")
            return "\(error.field): \(error.problem)"
        }
    }

    @Test("the valid base file reads")
    func valid() throws {
        #expect(try message(RawGGUF.valid().bytes) == nil)
    }

    @Test("truncation anywhere is reported with the field being read")
    func truncated() throws {
        let bytes = RawGGUF.valid().bytes
        for cut in [3, 10, 30, 60, 100, bytes.count - 1] {
            let text = try #require(try message(Array(bytes.prefix(cut))), "cut at \(cut)")
            #expect(text.contains("truncated"), "\(cut): \(text)")
        }
    }

    @Test("bad magic, versions and byte order")
    func headerProblems() throws {
        var raw = RawGGUF.valid()
        raw.bytes[0] = UInt8(ascii: "X")
        #expect(try message(raw.bytes)?.hasPrefix("magic:") == true)
        for (version, expected) in [
            (UInt32(1), "version 1 is not supported"), (4, "version 4"), (0x0300_0000, "byte-swapped"),
        ] {
            var raw = RawGGUF()
            raw.header(tensors: 0, keys: 0, version: version)
            #expect(try message(raw.bytes)?.contains(expected) == true, "version \(version)")
        }
    }

    @Test("absurd counts and string lengths are refused before allocating")
    func absurdCounts() throws {
        var raw = RawGGUF()
        raw.header(tensors: UInt64.max / 2, keys: 0)
        #expect(try message(raw.bytes)?.contains("tensor_count") == true)
        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.u64(1 << 40)
        #expect(try message(raw.bytes)?.contains("exceeds 1 GiB") == true)
        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.string("big.array")
        raw.u32(9)
        raw.u32(4)
        raw.u64(1 << 35)
        #expect(try message(raw.bytes)?.contains("larger than the file could hold") == true)
        // Tensors of 2^62 bytes each: the running data offset would overflow (found by fuzzing).
        raw = RawGGUF()
        raw.header(tensors: 3, keys: 0)
        raw.tensorInfo("a", ne: [1 << 60], offset: 0)
        raw.tensorInfo("b", ne: [1 << 60], offset: 1 << 62)
        raw.tensorInfo("c", ne: [1 << 60], offset: 1 << 63)
        raw.padData(64)
        #expect(try message(raw.bytes)?.contains("do not fit in the") == true)
    }

    @Test("an array is bounded by its elements' size in the file and by 2^24 elements, whatever the file's size")
    func arrayBounds() throws {
        // 2^20 u32 elements need 4 MiB; a file of 1 MiB past the count cannot hold them.
        var raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.key("small.file", type: 9) {
            $0.u32(4)
            $0.u64(1 << 20)
        }
        raw.bytes += [UInt8](repeating: 0, count: 1 << 20)
        #expect(try message(raw.bytes)?.contains("larger than the file could hold") == true)
        // 2^24 + 1 one-byte elements fit in a 17 MiB file, but held as values they would take 400 MB
        // and more (24 bytes each): refused. (The file is sparse: its zeros take no disk.)
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("huge-array.gguf")
        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.key("huge.array", type: 9) {
            $0.u32(0)
            $0.u64((1 << 24) + 1)
        }
        try Data(raw.bytes).write(to: url)
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: UInt64(raw.bytes.count + (1 << 24) + 1))
        try handle.close()
        #expect {
            try GGUFReader().read(url, options: ReadOptions(naming: .gguf))
        } throws: { error in
            let message = (error as? GGUFError)?.errorDescription ?? ""
            return message.contains("huge.array") && message.contains("Lathe reads at most 16777216 per array")
        }
    }

    @Test("duplicate keys and tensor names, empty keys, nested arrays, unknown value types")
    func structure() throws {
        var raw = RawGGUF()
        raw.header(tensors: 0, keys: 2)
        raw.keyU32("dup", 1)
        raw.keyU32("dup", 2)
        #expect(try message(raw.bytes) == "key 'dup': duplicate key")

        raw = RawGGUF()
        raw.header(tensors: 2, keys: 0)
        raw.tensorInfo("same", ne: [4], offset: 0)
        raw.tensorInfo("same", ne: [4], offset: 32)
        raw.padData(48)
        #expect(try message(raw.bytes) == "tensor 'same': duplicate tensor name")

        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.keyU32("", 1)
        #expect(try message(raw.bytes) == "metadata key: empty key")

        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.string("nested")
        raw.u32(9)
        raw.u32(9)
        raw.u64(0)
        #expect(try message(raw.bytes) == "key 'nested': nested arrays are not allowed")

        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.string("weird")
        raw.u32(13)
        #expect(try message(raw.bytes) == "key 'weird': unknown value type 13")
    }

    @Test("invalid UTF-8 in a key and a bad bool byte")
    func encoding() throws {
        var raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.u64(2)
        raw.bytes += [0xC3, 0x28]
        #expect(try message(raw.bytes) == "metadata key: string is not valid UTF-8")

        raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.string("flag")
        raw.u32(7)
        raw.bytes.append(2)
        #expect(try message(raw.bytes) == "key 'flag': bool byte is 2, not 0 or 1")
    }

    @Test("config and tokenizer values that do not fit their GGUF types are errors naming the key, not traps")
    func outOfRange() throws {
        /// A Llama header with two tokens plus `extra`, read; the error's text, or nil when it reads.
        func read(_ extraKeys: UInt64, _ extra: (inout RawGGUF) -> Void) throws -> String? {
            var raw = RawGGUF()
            raw.header(tensors: 0, keys: 8 + extraKeys)
            raw.key("general.architecture", type: 8) { $0.string("llama") }
            for (key, value) in [
                ("llama.embedding_length", 8), ("llama.attention.head_count", 2), ("llama.block_count", 1),
                ("llama.feed_forward_length", 16),
            ] { raw.keyU32(key, UInt32(value)) }
            raw.key("llama.attention.layer_norm_rms_epsilon", type: 6) { $0.u32(Float(1e-5).bitPattern) }
            raw.key("tokenizer.ggml.model", type: 8) { $0.string("gpt2") }
            raw.key("tokenizer.ggml.tokens", type: 9) {
                $0.u32(8)
                $0.u64(2)
                $0.string("a")
                $0.string("b")
            }
            extra(&raw)
            let directory = try Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let url = directory.appendingPathComponent("range.gguf")
            try Data(raw.bytes).write(to: url)
            do {
                _ = try GGUFReader().read(url, options: ReadOptions(naming: .gguf))
                return nil
            } catch let error as LatheError {
                let text = error.errorDescription ?? ""
                #expect(text.hasPrefix(url.path), "names the file: \(text)")
                return String(text.dropFirst(url.path.count))
            }
        }
        #expect(try read(0) { _ in } == nil, "the base header reads")
        #expect(
            try read(1) { $0.key("llama.context_length", type: 10) { $0.u64(1 << 33) } }
                == ": llama.context_length: got 8589934592, expected an integer from 0 to 4294967295")
        #expect(
            try read(1) { $0.key("llama.attention.head_count_kv", type: 5) { $0.u32(UInt32(bitPattern: -1)) } }
                == ": llama.attention.head_count_kv: got -1, expected an integer from 0 to 4294967295")
        #expect(
            try read(1) {
                $0.key("tokenizer.ggml.token_type", type: 9) {
                    $0.u32(4)
                    $0.u64(2)
                    $0.u32(1)
                    $0.u32(1 << 31)
                }
            } == ": tokenizer.ggml.token_type[1]: got 2147483648, expected a 32-bit token type")
        #expect(
            try read(1) { $0.key("tokenizer.ggml.bos_token_id", type: 4) { $0.u32(2) } }
                == ": tokenizer.ggml.bos_token_id: got 2, expected a token id below 2")
        // −1 is how some converters say "no such token".
        #expect(
            try read(1) { $0.key("tokenizer.ggml.bos_token_id", type: 5) { $0.u32(UInt32(bitPattern: -1)) } } == nil)
    }

    @Test("another family without Llama's keys reads as a container; a llama file without them is an error")
    func otherFamilies() throws {
        func read(_ architecture: String) throws -> ModelGraph {
            var raw = RawGGUF()
            raw.header(tensors: 1, keys: 2)
            raw.key("general.architecture", type: 8) { $0.string(architecture) }
            raw.keyU32("\(architecture).embedding_length", 8)
            raw.tensorInfo("token_embd.weight", ne: [4], offset: 0)
            raw.padData(16)
            let directory = try Fixtures.temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let url = directory.appendingPathComponent("\(architecture).gguf")
            try Data(raw.bytes).write(to: url)
            return try GGUFReader().read(url, options: ReadOptions(naming: .gguf))
        }
        let gpt2 = try read("gpt2")
        #expect(gpt2.config == nil && gpt2.tensorNames == ["token_embd.weight"])
        #expect {
            try read("llama")
        } throws: { error in
            (error as? LatheError)?.errorDescription?.hasSuffix("missing required field 'llama.attention.head_count'")
                == true
        }
    }

    @Test("general.alignment must be a UINT32 power of two")
    func alignment() throws {
        var raw = RawGGUF()
        raw.header(tensors: 0, keys: 1)
        raw.keyU32("general.alignment", 24)
        #expect(try message(raw.bytes)?.hasPrefix("key 'general.alignment': must be a UINT32 power of two") == true)
    }

    @Test("tensor infos: gaps and overlaps, unknown and removed types, partial blocks, long names, rank")
    func tensorInfos() throws {
        func file(_ build: (inout RawGGUF) -> Void) -> [UInt8] {
            var raw = RawGGUF()
            raw.header(tensors: 1, keys: 0)
            build(&raw)
            raw.padData(256)
            return raw.bytes
        }
        #expect(
            try message(file { $0.tensorInfo("t", ne: [4], offset: 32) })?.contains("data offset 32, expected 0")
                == true)
        #expect(
            try message(file { $0.tensorInfo("t", ne: [4], type: 99, offset: 0) })
                == "tensor 't': unknown ggml type id 99")
        #expect(
            try message(file { $0.tensorInfo("t", ne: [4], type: 4, offset: 0) })
                == "tensor 't': unknown ggml type id 4")
        #expect(try message(file { $0.tensorInfo("t", ne: [256], type: 16, offset: 0) })?.contains("IQ2_XXS") == true)
        #expect(
            try message(file { $0.tensorInfo("t", ne: [48], type: 2, offset: 0) })?.contains(
                "not a multiple of Q4_0's block of 32") == true)
        #expect(
            try message(file { $0.tensorInfo(String(repeating: "x", count: 64), ne: [4], offset: 0) })?.contains(
                "at most 63") == true)
        #expect(
            try message(file { $0.tensorInfo("t", ne: [1, 1, 1, 1, 1], offset: 0) })?.contains("at most 4") == true)
        #expect(
            try message(file { $0.tensorInfo("t", ne: [UInt64(1) << 62, 8], offset: 0) })?.contains("overflows") == true
        )

        var raw = RawGGUF()
        raw.header(tensors: 1, keys: 0)
        raw.tensorInfo("t", ne: [1024], offset: 0)
        raw.padData(100)
        #expect(try message(raw.bytes)?.contains("the file is truncated") == true)
    }
}

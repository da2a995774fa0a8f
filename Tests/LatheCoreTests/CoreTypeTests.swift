import Foundation
import LatheTestSupport
import Testing

@testable import LatheCore

@Suite("DType and shapes")
struct DTypeTests {
    @Test("scalar byte counts")
    func scalarSizes() throws {
        #expect(try DType.f32.byteCount(for: [2, 3]) == 24)
        #expect(try DType.bf16.byteCount(for: [576]) == 1152)
        #expect(try DType.bool.byteCount(for: [5]) == 5)
        #expect(try DType.i64.byteCount(for: []) == 8, "a scalar has one element")
    }

    @Test(
        "ggml block sizes follow the type table",
        arguments: [
            (GGMLBlockType.q4_0, 18), (.q4_1, 20), (.q5_0, 22), (.q5_1, 24), (.q8_0, 34), (.q8_1, 36),
            (.q2_K, 84), (.q3_K, 110), (.q4_K, 144), (.q5_K, 176), (.q6_K, 210), (.q8_K, 292),
        ])
    func blockSizes(type: GGMLBlockType, bytes: Int) throws {
        #expect(type.bytesPerBlock == bytes)
        let shape: Shape = [4, 512]
        #expect(try DType.quantized(.ggml(type)).byteCount(for: shape) == 4 * 512 / type.blockSize * bytes)
    }

    @Test("SmolLM2's tensors have the file's byte sizes")
    func smolSizes() throws {
        // formats.md §5.2: token_embd.weight is Q8_0 [49152, 576], blk.N.attn_q.weight Q4_1 [576, 576].
        #expect(try DType.quantized(.ggml(.q8_0)).byteCount(for: [49152, 576]) == 30_081_024)
        #expect(try DType.quantized(.ggml(.q4_1)).byteCount(for: [576, 576]) == 207_360)
        #expect(DType.quantized(.ggml(.q4_1)).bitsPerWeight == 5.0)
    }

    @Test("a row that does not fill whole blocks is an error naming the tensor")
    func partialBlock() {
        let info = TensorInfo(name: "blk.0.attn_q.weight", dtype: .quantized(.ggml(.q4_K)), shape: [576, 576])
        #expect {
            try info.byteCount()
        } throws: { error in
            let message = (error as? LatheError)?.errorDescription ?? ""
            return message.contains("blk.0.attn_q.weight") && message.contains("block of 256")
        }
    }

    @Test("packed rows hold their scales, then each segment's codes padded to whole bytes")
    func packed() throws {
        let layout = try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 7, bits: 4, slot: 0), .init(start: 7, count: 3, bits: 8, slot: 1)],
            slotCount: 2)
        // 8 bytes of scales + 4 bytes for 7 nibbles + 3 bytes: 15 per row.
        #expect(try DType.quantized(.packed(layout)).byteCount(for: [3, 10]) == 45)
        #expect(DType.quantized(.packed(layout)).description == "PACKED4/8x2")
        #expect(throws: LatheError.self) { try DType.quantized(.packed(layout)).byteCount(for: [3, 11]) }
        #expect(throws: LatheError.self) {
            try PackedIntegerEncoding(segments: [.init(start: 0, count: 4, bits: 3, slot: 0)], slotCount: 1)
        }
        #expect(throws: LatheError.self) {
            try PackedIntegerEncoding(segments: [.init(start: 1, count: 4, bits: 4, slot: 0)], slotCount: 1)
        }
    }

    @Test("overflowing and negative shapes are refused")
    func badShapes() {
        #expect(throws: LatheError.self) { try Shape([Int.max, 2]).elementCount() }
        #expect(throws: LatheError.self) { try Shape([-1]).elementCount() }
    }
}

@Suite("Storage and graphs")
struct StorageTests {
    @Test("a mapped file hands out bounds-checked zero-copy views")
    func mapped() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("blob.bin")
        try Data([0, 0, 0x80, 0x3F, 0, 0, 0, 0x40]).write(to: url)
        let file = try MappedFile(path: url.path)
        let storage = try TensorStorage(file: file, offset: 0, length: 8)
        #expect(storage.isMapped)
        #expect(storage.values(as: Float.self) == [1, 2])
        #expect(throws: LatheError.outOfBounds(path: url.path, offset: 4, length: 8, size: 8)) {
            try TensorStorage(file: file, offset: 4, length: 8)
        }
        #expect(throws: LatheError.self) { try MappedFile(path: directory.appendingPathComponent("missing").path) }
    }

    /// Opening a FIFO for reading waits for a writer unless it is opened non-blocking: should that
    /// regress, the time limit turns the hang into a failure.
    @Test("a FIFO or a directory is refused as not a regular file, at once", .timeLimit(.minutes(1)))
    func notRegular() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let fifo = directory.appendingPathComponent("model.gguf")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        for path in [fifo.path, directory.path] {
            #expect(throws: LatheError.fileAccess(path: path, reason: "not a regular file")) {
                try MappedFile(path: path)
            }
        }
    }

    @Test("a graph keeps tensor order and rejects duplicate names")
    func graph() throws {
        func tensor(_ name: String) -> Tensor {
            Tensor(info: TensorInfo(name: name, dtype: .f32, shape: [1]), storage: TensorStorage(values: [Float(0)]))
        }
        var graph = try ModelGraph(source: "memory", tensors: [tensor("b"), tensor("a")])
        #expect(graph.tensorNames == ["b", "a"])
        #expect(throws: LatheError.duplicateID(kind: "tensor", id: "a")) { try graph.append(tensor("a")) }
        try graph.replace("b", with: tensor("c"))
        #expect(graph.tensorNames == ["c", "a"])
        try graph.remove("c")
        #expect(graph["a"] != nil && graph["c"] == nil)
    }

    @Test("a computed tensor of the wrong size is caught when materialised")
    func computedSize() throws {
        let tensor = Tensor(info: TensorInfo(name: "x", dtype: .f32, shape: [4])) { TensorStorage(values: [Float(1)]) }
        #expect(throws: LatheError.self) { try tensor.storage() }
    }

    @Test("metadata keeps insertion order and replaces in place")
    func metadataOrder() {
        var metadata = Metadata([("general.architecture", .string("llama")), ("llama.block_count", .uint32(30))])
        metadata["general.name"] = .string("x")
        metadata["general.architecture"] = .string("llama2")
        #expect(metadata.keys == ["general.architecture", "llama.block_count", "general.name"])
        metadata["llama.block_count"] = nil
        #expect(metadata.map(\.key) == ["general.architecture", "general.name"])
        #expect(MetadataValue.uint32(30).intValue == 30)
    }

    @Test("typed metadata JSON round-trips every type, and refuses arrays of arrays, empty ones too")
    func metadataJSON() throws {
        let metadata = Metadata([
            ("a", .float32(1e-5)), ("b", .float64(-.infinity)), ("c", .int64(-7)), ("d", .bool(true)),
            ("e", .array(.string, [.string("x"), .string("y")])), ("f", .float32(.nan)),
        ])
        let back = try Metadata(json: metadata.jsonValue(), field: "m")
        #expect(back.keys == metadata.keys)
        #expect(back["a"] == .float32(1e-5) && back["b"] == .float64(-.infinity) && back["c"] == .int64(-7))
        #expect(back["f"]?.doubleValue?.isNaN == true)
        for value in [#"[]"#, #"[["1"]]"#] {
            let nested = try JSONValue.parse(#"{"k":{"type":"array","element":"array","value":\#(value)}}"#)
            #expect(throws: LatheError.self) { try Metadata(json: nested, field: "m") }
        }
    }

    @Test("the Llama config check names the bad field")
    func configValidation() throws {
        let smol = LlamaConfig(
            hiddenSize: 576, layerCount: 30, headCount: 9, kvHeadCount: 3, ffnSize: 1536, normEpsilon: 1e-5,
            ropeBase: 100_000, vocabSize: 49152, contextLength: 8192, tiedEmbeddings: true)
        try smol.validate()
        #expect(smol.headDim == 64 && smol.groupSize == 3)
        var bad = smol
        bad.kvHeadCount = 4
        #expect(
            throws: LatheError.invalidValue(
                field: "KV head count", value: "4", expected: "a divisor of the head count 9")
        ) {
            try bad.validate()
        }
        // Sizes past any real model's are refused before a pass loops over them or a product of
        // two overflows; non-finite numbers too.
        for (change, field, expected) in [
            ({ (c: inout LlamaConfig) in c.layerCount = 1 << 31 }, "layer count", "at most 4096"),
            ({ (c: inout LlamaConfig) in c.headDim = 1 << 32 }, "head dim", "at most 4096"),
            (
                { (c: inout LlamaConfig) in c.headCount = 0 }, "head count (llama.attention.head_count",
                "a positive integer (is the key missing?)"
            ),
            ({ (c: inout LlamaConfig) in c.contextLength = -1 }, "context length", "0 (unknown) to 16777216"),
            ({ (c: inout LlamaConfig) in c.normEpsilon = .infinity }, "norm epsilon", "a positive finite number"),
            ({ (c: inout LlamaConfig) in c.ropeBase = .nan }, "RoPE base", "a positive finite number"),
        ] {
            var config = smol
            change(&config)
            #expect {
                try config.validate()
            } throws: { error in
                guard case .invalidValue(let name, _, let wanted) = error as? LatheError else { return false }
                return name.hasPrefix(field) && wanted == expected
            }
        }
        // A context length of 0 is unknown (the key is optional), not damage.
        var unknownContext = smol
        unknownContext.contextLength = 0
        try unknownContext.validate()
        #expect(unknownContext.trainedContext == nil && smol.trainedContext == smol.contextLength)
        // The graph's checked accessor names the model.
        var huge = smol
        huge.layerCount = 1 << 20
        let graph = try ModelGraph(source: "model.gguf", config: huge)
        #expect {
            try graph.llamaConfig()
        } throws: { error in
            (error as? LatheError)?.errorDescription?.hasPrefix("model.gguf: Llama config: layer count") == true
        }
        #expect(try ModelGraph(source: "m", config: smol).llamaConfig() == smol)
        #expect(throws: LatheError.missingField("Llama config", in: "m")) { try ModelGraph(source: "m").llamaConfig() }
    }
}

@Suite("Decoding failures")
struct DecodingFailureTests {
    struct Options: Codable {
        var bits: Int
        var seed: UInt64?
        var parts: [Int]?
    }

    func message(_ json: String) -> String {
        do {
            _ = try JSONDecoder().decode(Options.self, from: Data(json.utf8))
            return "decoded"
        } catch {
            return DecodingFailure.describe(error, in: json, field: "options").errorDescription ?? ""
        }
    }

    @Test("one line naming the path, the value found and what was expected")
    func messages() {
        #expect(message(#"{"bits": "4"}"#) == #"options.bits: got "4", expected an integer (Int)"#)
        #expect(message(#"{"bits": 4, "parts": [1, true]}"#) == "options.parts[1]: got true, expected an integer (Int)")
        #expect(message(#"{"seed": 1}"#) == "options: missing required field 'bits'")
        #expect(message("[1, 2]") == "options: got [1,2], expected an object")
        #expect(message("{bits") == "options: got {bits, expected valid JSON")
        #expect(
            message(#"{"bits": 4, "seed": -1}"#).hasPrefix(#"options: got {"bits": 4, "seed": -1}, expected values"#))
    }

    @Test("an error a custom decoder throws keeps its own message")
    func customError() {
        struct Odd: Decodable {
            struct NotOdd: LocalizedError { var errorDescription: String? { "bits must be odd" } }
            init(from decoder: any Decoder) throws { throw NotOdd() }
        }
        let json = #"{"bits": 4}"#
        do {
            _ = try JSONDecoder().decode(Odd.self, from: Data(json.utf8))
            Issue.record("decoded")
        } catch {
            #expect(
                DecodingFailure.describe(error, in: json, field: "options").errorDescription
                    == "options: bits must be odd")
        }
    }
}

@Suite("Atomic output")
struct AtomicOutputTests {
    @Test("a failed write leaves nothing at the destination; a good one is published")
    func atomic() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let destination = directory.appendingPathComponent("model.bin")
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try AtomicOutput(destination: destination, overwrite: false).run { url in
                try Data([1, 2, 3]).write(to: url)
                throw Boom()
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
        try AtomicOutput(destination: destination, overwrite: false).run { try Data([4]).write(to: $0) }
        #expect(try Data(contentsOf: destination) == Data([4]))
        #expect(throws: LatheError.self) { try AtomicOutput(destination: destination, overwrite: false) }
        try AtomicOutput(destination: destination, overwrite: true).run { try Data([5]).write(to: $0) }
        #expect(try Data(contentsOf: destination) == Data([5]))
    }

    @Test("an error about the temporary, also inside a tensor's error, names the destination")
    func errorsNameTheDestination() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let destination = directory.appendingPathComponent("model.gguf")
        let output = try AtomicOutput(destination: destination, overwrite: false)
        let inner = LatheError.fileAccess(path: output.temporary.path, reason: "No space left on device")
        #expect(
            output.naming(inner.inTensor("w")) as? LatheError
                == .inTensor("w", .fileAccess(path: destination.path, reason: "No space left on device")))
        let shard = LatheError.fileAccess(path: output.temporary.path + "/index.json", reason: "x")
        #expect(output.naming(shard) as? LatheError == .fileAccess(path: destination.path + "/index.json", reason: "x"))
        output.discard()
    }

    @Test("a directory output replaces a model directory, whose old files are gone, with nothing left beside it")
    func directoryReplaced() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let destination = directory.appendingPathComponent("hf")
        for (value, file) in [(1, "config.json"), (2, "tokenizer.json")] {
            try AtomicOutput(destination: destination, overwrite: true, kind: .directory).run { url in
                try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
                try Data([UInt8(value)]).write(to: url.appendingPathComponent(file))
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: destination.path) == ["tokenizer.json"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["hf"])
    }

    @Test("the temporaries a killed run left beside a destination are found, and only those")
    func leftovers() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let names = [".m.gguf.3jxaoleodszw7.tmp", ".m.gguf.old.123", ".m.gguf.x.tmp.keep", ".n.gguf.abc.tmp", "m.gguf"]
        for name in names { try Data().write(to: directory.appendingPathComponent(name)) }
        let found = AtomicOutput.leftovers(beside: directory.appendingPathComponent("m.gguf"))
        #expect(found.map(\.lastPathComponent) == [".m.gguf.3jxaoleodszw7.tmp", ".m.gguf.old.123"])
    }
}

/// Crashes, each in a child process (an exit test): what a crash leaves behind.
@Suite("Crash cleanup", .serialized)
struct CrashCleanupTests {
    /// A directory both the test and its child process can name (the child's parent is the test).
    static func scratch(_ label: String, forParent pid: Int32) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("lathe-crash-\(label)-\(pid)")
    }

    @Test("a mapped file truncated while it is read: one line naming it, exit 1, the temporaries removed")
    func truncatedWhileRead() async throws {
        let directory = Self.scratch("bus", forParent: getpid())
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = await #expect(processExitsWith: .exitCode(1), observing: [\.standardErrorContent]) {
            let directory = CrashCleanupTests.scratch("bus", forParent: getppid())
            let input = directory.appendingPathComponent("input.bin")
            let temporary = directory.appendingPathComponent(".out.bin.x.tmp")
            try Data(repeating: 7, count: 1 << 16).write(to: input)
            try Data([1]).write(to: temporary)
            InterruptCleanup.handleCrashes()
            InterruptCleanup.register(temporary)
            let file = try MappedFile(path: input.path)
            truncate(input.path, 0)
            let byte = try file.withBytes(offset: 40_000, length: 1) { $0[0] }
            print(byte)
        }
        let errors = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(
            errors.contains("input.bin: the file was truncated, or could not be read, while Lathe was reading it"),
            "\(errors)")
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(".out.bin.x.tmp").path))
    }

    @Test("an abort (a failed allocation's end) removes the registered temporaries before the crash goes on")
    func abortCleansUp() async throws {
        let directory = Self.scratch("abort", forParent: getpid())
        try? FileManager.default.removeItem(at: directory)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        await #expect(processExitsWith: .signal(SIGABRT)) {
            let temporary = CrashCleanupTests.scratch("abort", forParent: getppid())
                .appendingPathComponent(".out.bin.y.tmp")
            try Data([1]).write(to: temporary)
            // The default action after the cleanup, not Swift's crash report (slow to symbolicate).
            signal(SIGABRT, SIG_DFL)
            InterruptCleanup.handleCrashes()
            InterruptCleanup.register(temporary)
            abort()
        }
        #expect(!FileManager.default.fileExists(atPath: directory.appendingPathComponent(".out.bin.y.tmp").path))
        #expect(FileManager.default.fileExists(atPath: directory.path))
    }
}

@Suite("SHA-256")
struct SHA256Tests {
    @Test(
        "FIPS 180-4 test vectors",
        arguments: [
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            (
                "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"
            ),
        ])
    func vectors(text: String, digest: String) {
        var hasher = SHA256()
        hasher.update(Array(text.utf8))
        #expect(hasher.finalize() == digest)
    }

    @Test("streaming in odd pieces equals one shot; a million 'a's")
    func streaming() {
        var hasher = SHA256()
        let chunk = [UInt8](repeating: UInt8(ascii: "a"), count: 999)
        var remaining = 1_000_000
        while remaining > 0 {
            let n = min(remaining, chunk.count)
            hasher.update(Array(chunk.prefix(n)))
            remaining -= n
        }
        #expect(hasher.finalize() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test(
        "the SmolLM2 file hashes to the sha256 that setup checks",
        .enabled(if: Fixtures.smolLM2IsAvailable, Comment(rawValue: Fixtures.smolLM2SkipReason)))
    func realFile() throws {
        #expect(
            try SHA256.file(Fixtures.smolLM2.path) == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        )
    }
}

@Suite("Llama config metadata")
struct LlamaConfigMetadataTests {
    @Test("llama3 scaling keys: written with the scaling, cleared without it, ignored beside a scaling type")
    func ropeScalingKeys() throws {
        var config = TinyModel.config()
        config.ropeScaling = LlamaConfig.RopeScaling(
            type: "llama3", factor: 8, originalContextLength: 64, lowFrequencyFactor: 1, highFrequencyFactor: 4)
        var metadata = Metadata()
        config.store(in: &metadata)
        #expect(metadata["lathe.rope_scaling.type"] == .string("llama3"))
        #expect(try LlamaConfig(metadata: metadata, source: "m")?.ropeScaling == config.ropeScaling)
        // The same metadata stored again without a scaling: no llama3 key survives to come back on reading.
        config.ropeScaling = nil
        config.store(in: &metadata)
        #expect(!metadata.keys.contains { $0.hasPrefix("lathe.rope_scaling.") })
        #expect(try LlamaConfig(metadata: metadata, source: "m")?.ropeScaling == nil)
        // A file's own scaling type wins over stray Lathe keys.
        metadata["llama.rope.scaling.type"] = .string("none")
        metadata["lathe.rope_scaling.type"] = .string("llama3")
        #expect(try LlamaConfig(metadata: metadata, source: "m")?.ropeScaling == nil)
    }

    @Test("the llama3 divisors are refused for an absurd head size instead of allocating for it")
    func divisorsBounded() {
        let scaling = LlamaConfig.RopeScaling(type: "llama3", factor: 8)
        #expect(scaling.frequencyDivisors(headDim: 128, base: 500_000)?.count == 64)
        #expect(scaling.frequencyDivisors(headDim: Int(UInt32.max) - 1, base: 500_000) == nil)
        #expect(LlamaConfig.RopeScaling(type: "linear", factor: 2).frequencyDivisors(headDim: 128, base: 1e4) == nil)
    }
}

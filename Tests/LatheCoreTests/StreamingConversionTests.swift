import Foundation
import LatheTestSupport
import Synchronization
import Testing

@testable import LatheCore

@Suite("Streaming conversion: ordered pipeline, scale scan, JSON escapes")
struct StreamingConversionTests {
    /// Fills each chunk with its own number, taking longer for early chunks so that later ones
    /// finish first on another worker.
    private func runNumbered(chunks: Int, workers: Int, failAt: Int? = nil, consumeFailAt: Int? = nil) throws
        -> [Int]
    {
        let pipeline = OrderedChunkPipeline(chunkCount: chunks, slotBytes: 16, workers: workers)
        var consumed: [Int] = []
        try pipeline.run(
            produce: { chunk, slot, _ in
                if chunk == failAt { throw LatheError.invalidValue(field: "chunk", value: "\(chunk)", expected: "x") }
                if chunk % 3 == 0 { usleep(2000) }
                slot.storeBytes(of: UInt64(chunk), toByteOffset: 0, as: UInt64.self)
                return 8 + chunk % 9
            },
            consume: { bytes in
                let chunk = Int(bytes.loadUnaligned(as: UInt64.self))
                #expect(bytes.count == 8 + chunk % 9)
                if chunk == consumeFailAt {
                    throw LatheError.invalidValue(field: "sink", value: "full", expected: "room")
                }
                consumed.append(chunk)
            })
        return consumed
    }

    @Test("chunks reach the consumer in order, whatever the worker count", arguments: [1, 2, 3, 5])
    func ordered(workers: Int) throws {
        #expect(try runNumbered(chunks: 23, workers: workers) == Array(0..<23))
        #expect(try runNumbered(chunks: 1, workers: workers) == [0])
        #expect(try runNumbered(chunks: 0, workers: workers) == [])
    }

    @Test("pipelines started at once from several threads each keep their own order")
    func concurrentCallers() {
        let results = Mutex<[[Int]]>([])
        DispatchQueue.concurrentPerform(iterations: 4) { caller in
            let consumed = (try? runNumbered(chunks: 15 + caller, workers: 2)) ?? []
            results.withLock { $0.append(consumed) }
        }
        let lengths = results.withLock { $0.map(\.count).sorted() }
        #expect(lengths == [15, 16, 17, 18])
        for consumed in results.withLock({ $0 }) { #expect(consumed == Array(0..<consumed.count)) }
    }

    @Test("a producer's or the consumer's error stops the pipeline and is rethrown")
    func errors() {
        #expect(throws: LatheError.self) { _ = try runNumbered(chunks: 40, workers: 2, failAt: 17) }
        #expect(throws: LatheError.self) { _ = try runNumbered(chunks: 40, workers: 3, consumeFailAt: 5) }
    }

    @Test("the scale scan names the first block with a non-finite scale in any field")
    func scaleScan() {
        let type = GGMLBlockType.q4_1
        var bytes = [UInt8](repeating: 0, count: 12 * type.bytesPerBlock)
        // Block 9's scale d is NaN; block 6's minimum (the second field) is +infinity.
        bytes[9 * type.bytesPerBlock + 1] = 0x7E
        bytes[6 * type.bytesPerBlock + 3] = 0x7C
        let encoding = QuantizedEncoding.ggml(type)
        #expect(bytes.withUnsafeBytes { encoding.firstNonFiniteScale($0) } == 6)
        bytes[6 * type.bytesPerBlock + 3] = 0x7B  // 65504, the largest finite half
        #expect(bytes.withUnsafeBytes { encoding.firstNonFiniteScale($0) } == 9)
        bytes[9 * type.bytesPerBlock + 1] = 0
        #expect(bytes.withUnsafeBytes { encoding.firstNonFiniteScale($0) } == nil)

        // Q8_K keeps an F32 scale: an exponent of all ones is caught there too.
        var k = [UInt8](repeating: 0, count: 3 * GGMLBlockType.q8_K.bytesPerBlock)
        k.withUnsafeMutableBytes {
            $0.storeBytes(
                of: Float.infinity.bitPattern, toByteOffset: 2 * GGMLBlockType.q8_K.bytesPerBlock, as: UInt32.self)
        }
        #expect(k.withUnsafeBytes { QuantizedEncoding.ggml(.q8_K).firstNonFiniteScale($0) } == 2)
    }

    @Test("a writer that reserves more than it writes leaves a file of exactly what it wrote")
    func reservedBlocks() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let payload = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        for reservation in [0, payload.count + 8, 5 * payload.count] {
            let url = directory.appendingPathComponent("out-\(reservation).bin")
            let writer = try BinaryWriter(creating: url)
            try writer.write(UInt64(payload.count))
            try writer.reserve(totalBytes: reservation)
            try writer.write(payload)
            try writer.close()
            let written = try Data(contentsOf: url)
            #expect(written.count == 8 + payload.count, "reserved \(reservation)")
            #expect(written.dropFirst(8).elementsEqual(payload), "reserved \(reservation)")
            // Blocks reserved past the end are given back (a file system without fallocate has none).
            var status = stat()
            #expect(stat(url.path, &status) == 0)
            #expect(Int(status.st_blocks) * 512 < 2 * payload.count, "reserved \(reservation)")
        }
    }

    @Test("JSON strings: quotes, backslashes and control characters escaped, the rest copied whole")
    func jsonEscapes() {
        let text = "plain \"quoted\" back\\slash\nline\ttab\u{01}\u{1F}é ✓"
        #expect(
            JSONValue.string(text).serialized()
                == #""plain \"quoted\" back\\slash\nline\ttab\u0001\u001fé ✓""#)
        #expect(JSONValue.object([("k\"", .array([.string(""), .null]))]).serialized() == #"{"k\"":["",null]}"#)
        // What is written parses back to the same string.
        #expect((try? JSONValue.parse(JSONValue.string(text).serialized())) == .string(text))
    }

    @Test("a number formatted from NaN or infinity is written as null; finite numbers as they are")
    func nonFiniteNumbers() {
        let values: [JSONValue] = [
            .number(String(format: "%.6f", Double.nan)), .number(String(format: "%.9g", -Double.nan)),
            .number("\(Double.infinity)"), .number(String(format: "%.3f", -Double.infinity)), .number("-0.5"),
            .number("1e-7"), .int(42),
        ]
        #expect(JSONValue.array(values).serialized() == "[null,null,null,null,-0.5,1e-7,42]")
    }

    @Test("JSON strings are validated as UTF-8 with and without escapes; short and long ones parse alike")
    func jsonStringValidation() throws {
        for text in ["", "a", "é ✓ 𝄞", String(repeating: "long ✓ ", count: 40)] {
            let parsed = try Array("[\"\(text)\"]".utf8).withUnsafeBytes { try JSONValue.parse($0) }
            #expect(parsed == .array([.string(text)]))
        }
        for invalid: [UInt8] in [[0xFF], [0xC3], [0xE2, 0x9C], [0x41, 0x80, 0x42]] {
            for escaped in [false, true] {
                let bytes = Array("\"".utf8) + (escaped ? Array("\\n".utf8) : []) + invalid + Array("\"".utf8)
                let error = #expect(throws: JSONParseError.self, "\(invalid) escaped: \(escaped)") {
                    try bytes.withUnsafeBytes { try JSONValue.parse($0) }
                }
                #expect(error?.reason.contains("invalid UTF-8") == true)
            }
        }
    }

    @Test("JSON grammar edges: \\u takes four hex digits only, no leading zeros, keys distinct as bytes")
    func jsonGrammarEdges() throws {
        func parse(_ text: String) -> Result<JSONValue, JSONParseError> {
            Result { () throws(JSONParseError) in try JSONValue.parse(text) }
        }
        #expect(try parse(#"["\u0041\u00e9"]"#).get() == .array([.string("Aé")]))
        for bad in [#"["\u+041"]"#, #"["\u-000"]"#, #"["\u 041"]"#, #"["\u004"]"#, "012", "-01", "[00]"] {
            #expect(throws: JSONParseError.self, "\(bad)") { try parse(bad).get() }
        }
        let numbers: [(String, JSONValue)] = [
            ("0", .number("0")), ("-0", .number("-0")), ("0.5", .number("0.5")), ("10", .number("10")),
            ("-0e5", .number("-0e5")), ("[0,1]", .array([.number("0"), .number("1")])),
        ]
        for (good, value) in numbers {
            #expect(try parse(good).get() == value, "\(good)")
        }
        // Canonically equivalent but different keys are two keys; the same bytes twice are a duplicate.
        let both = try parse("{\"\u{E9}\":1,\"e\u{301}\":2}").get()
        #expect(both.objectValue?.count == 2)
        #expect(both["e\u{301}"] == .number("2") && both["\u{E9}"] == .number("1"))
        #expect(throws: JSONParseError.self) { try parse(#"{"a":1,"a":2}"#).get() }
        // Past 16 keys the duplicate check hashes: the same rules hold there.
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(try parse("{\(many)}").get().objectValue?.count == 40)
        #expect(throws: JSONParseError.self) { try parse("{\(many),\"k7\":0}").get() }
        let accents = (0..<20).map { "\"x\($0)\":0" }.joined(separator: ",")
        #expect(try parse("{\(accents),\"\u{E9}\":1,\"e\u{301}\":2}").get().objectValue?.count == 22)
    }

    @Test("an object's members one at a time: the same members, keys and errors as the whole parse")
    func jsonMembers() throws {
        func members(_ text: String) -> Result<[String], JSONParseError> {
            var seen: [String] = []
            let result = Array(text.utf8).withUnsafeBytes { bytes in
                Result { () throws(JSONParseError) in
                    try JSONValue.forEachMember(ofObject: bytes) { key, value in
                        seen.append("\(key)=\(value.serialized())")
                    }
                }
            }
            return result.map { seen }
        }
        #expect(try members(#" {"b":[1,{"c":null}],"a":"x"} "#).get() == [#"b=[1,{"c":null}]"#, #"a="x""#])
        #expect(try members("{}").get() == [])
        for bad in ["[1]", "", #"{"a":1,"a":2}"#, #"{"a":1} x"#, #"{"a":}"#, #"{"a":1"#] {
            #expect(throws: JSONParseError.self, "\(bad)") { try members(bad).get() }
        }
    }
}

import Compression
import FormatPacked
import Foundation
import LatheCore
import LatheTestSupport
import Testing

@testable import PassEncoding

// MARK: - Helpers

/// Bytes from hex digits; anything that is not a hex digit (spaces, newlines) is skipped.
private func hexBytes(_ text: String) -> [UInt8] {
    let digits = Array(text.filter(\.isHexDigit))
    return stride(from: 0, to: digits.count, by: 2).map { UInt8(String(digits[$0...($0 + 1)]), radix: 16)! }
}

/// The index of the first byte where two files differ (the shorter length when one is a prefix of the other).
private func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> Int? {
    if let index = a.indices.first(where: { $0 < b.count && a[$0] != b[$0] }) { return index }
    return a.count == b.count ? nil : min(a.count, b.count)
}

/// A little-endian u64 from eight bytes.
private func littleEndian(_ bytes: ArraySlice<UInt8>) -> UInt64 {
    bytes.reversed().reduce(UInt64(0)) { ($0 << 8) | UInt64($1) }
}

/// A member as the manifest of a written file places it (read with Lathe's JSON parser, not the reader).
private struct StoredMember {
    var name: String
    var offset: Int
    var length: Int
    var compression: String
}

/// An lpack file's bytes labelled with another major version, in the header and the manifest, with
/// the manifest's checksum recomputed (the file is otherwise unchanged).
private func relabelled(_ bytes: [UInt8], major: UInt8) throws -> [UInt8] {
    var copy = bytes
    let dataStart = try manifest(of: bytes).dataStart
    copy[8] = major
    let text = String(decoding: copy[32..<dataStart], as: UTF8.self)
        .replacingOccurrences(of: "\"version\":[\(bytes[8]),0]", with: "\"version\":[\(major),0]")
    copy.replaceSubrange(32..<dataStart, with: Array(text.utf8))
    withUnsafeBytes(of: XXHash64.hash(Array(copy[32..<dataStart])).littleEndian) {
        copy.replaceSubrange(24..<32, with: $0)
    }
    return copy
}

/// An lpack file at `url` holding one packed matrix `w` of `rows` rows on `encoding`'s grid; also
/// its values.
private func writeMatrix(_ encoding: PackedIntegerEncoding, rows: Int, to url: URL) throws -> (URL, [Float]) {
    var generator = SplitMix64(state: UInt64(rows * 1000 + encoding.rowLength))
    let values = onGrid(encoding, rows: rows, using: &generator)
    let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: rows) })
    let graph = try ModelGraph(
        source: "memory", metadata: Metadata(),
        tensors: [
            Tensor(
                info: TensorInfo(name: "w", dtype: .quantized(.packed(encoding)), shape: [rows, encoding.rowLength]),
                storage: TensorStorage(bytes: payload))
        ])
    _ = try PackedWriter().write(graph, to: url, options: WriteOptions())
    return (url, values)
}

/// The manifest of an lpack file and the offset where its data starts.
private func manifest(of bytes: [UInt8]) throws -> (json: JSONValue, dataStart: Int) {
    let length = Int(littleEndian(bytes[16..<24]))
    let json = try JSONValue.parse(String(decoding: bytes[32..<(32 + length)], as: UTF8.self))
    return (json, 32 + length)
}

private func members(of bytes: [UInt8]) throws -> [StoredMember] {
    let entries = try #require(try manifest(of: bytes).json["tensors"]?.arrayValue)
    var result: [StoredMember] = []
    for entry in entries {
        let name = try #require(entry["name"]?.stringValue)
        let offset = try #require(entry["offset"]?.intValue)
        let length = try #require(entry["length"]?.intValue)
        let compression = try #require(entry["compression"]?.stringValue)
        result.append(StoredMember(name: name, offset: offset, length: length, compression: compression))
    }
    return result
}

/// The worked example of formats/packed/SPEC.md §11, byte for byte. The manifest names the writer
/// (`lathe 0.1.0`): when Lathe's version changes, regenerate the example (lengths, offsets and both
/// checksums) in the spec and here.
private enum WorkedExample {
    static let header = hexBytes(
        """
        4c 50 41 43 4b 00 0d 0a  01 00 00 00  00 00 00 00
        a0 01 00 00 00 00 00 00  f6 e9 ce ec fe aa 9a bf
        """)
    static let manifest =
        #"{"format":"lpack","version":[1,0],"writer":"lathe 0.1.0","checksum":"xxh64","metadata":{"general.name":"#
        + #"{"type":"string","value":"example"}},"tensors":[{"name":"example.weight","dtype":{"kind":"packed","#
        + #""slots":2,"segments":[[0,4,4,0],[4,2,8,1]]},"shape":[1,6],"offset":448,"length":12,"size":12,"#
        + #""compression":"none","xxh64":"dd775f5c33420837"}]}"#
    /// Scales 0.5 and 0.125, nibbles (0, 0xB) and (7, 0xF), then 127 and −45.
    static let member = hexBytes("00 00 00 3f  00 00 00 3e  b0 f7  7f d3")
    static let values: [Float] = [-4, -0.5, 1.5, 3.5, 15.875, -5.625]

    /// Header, manifest padded with spaces to the 416-byte region, member at 448.
    static var file: [UInt8] {
        header + Array(manifest.utf8) + [UInt8](repeating: 0x20, count: 416 - manifest.utf8.count) + member
    }

    static func encoding() throws -> PackedIntegerEncoding {
        try PackedIntegerEncoding(
            segments: [.init(start: 0, count: 4, bits: 4, slot: 0), .init(start: 4, count: 2, bits: 8, slot: 1)],
            slotCount: 2)
    }

    static func graph() throws -> ModelGraph {
        try ModelGraph(
            source: "SPEC.md", metadata: Metadata([("general.name", .string("example"))]),
            tensors: [
                Tensor(
                    info: TensorInfo(name: "example.weight", dtype: .quantized(.packed(encoding())), shape: [1, 6]),
                    storage: TensorStorage(bytes: member))
            ])
    }
}

/// F32, F16 and I8 tensors, a packed matrix (a 4-bit segment over two nibble blocks, odd-length segments,
/// two segments sharing a slot) and typed metadata with Lathe's records; also the packed matrix's values.
private func roundTripGraph() throws -> (graph: ModelGraph, packedValues: [Float]) {
    var generator = SplitMix64(state: 11)
    let floats = (0..<15).map { _ in Float.random(in: -2...2, using: &generator) }
    let encoding = try PackedIntegerEncoding(
        segments: [
            .init(start: 0, count: 70, bits: 4, slot: 0), .init(start: 70, count: 3, bits: 8, slot: 1),
            .init(start: 73, count: 5, bits: 4, slot: 0), .init(start: 78, count: 9, bits: 8, slot: 2),
        ],
        slotCount: 3)
    let values = onGrid(encoding, rows: 3, using: &generator)
    let payload = try #require(values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 3) })
    var metadata = Metadata([
        ("general.name", .string("round trip ✓ \"quoted\"\n")),
        ("custom.float", .float32(0.1)),
        ("custom.double", .float64(-1e-300)),
        ("custom.list", .array(.uint64, [.uint64(.max), .uint64(0)])),
        ("custom.flag", .bool(true)),
        ("custom.small", .int8(-128)),
    ])
    try SubspaceLayout(hiddenHigh: 72, headHigh: 8, basis: "pca").store(in: &metadata)
    try OnlineTransforms(downProjectionHadamard: 1536, queryKeyRotation: true).store(in: &metadata)
    var scheme = QuantizationScheme()
    scheme.keys = ActivationQuantizer(bits: 4, highCount: 8, groupSize: 64, includeZero: false)
    scheme.weights = WeightQuantizationRecord(
        method: "gptq", bits: 4, highBits: 8, hiddenHighColumns: 72, headHighColumns: 8, groupSize: nil,
        tensors: ["self_attn.o_proj", "mlp.down_proj"])
    try scheme.store(in: &metadata)
    let graph = try ModelGraph(
        source: "memory", metadata: metadata,
        tensors: [
            Tensor(
                info: TensorInfo(name: "a.f32", dtype: .f32, shape: [3, 5]), storage: TensorStorage(values: floats)),
            Tensor(
                info: TensorInfo(name: "b.f16", dtype: .f16, shape: [2, 3]),
                storage: TensorStorage(values: floats.prefix(6).map { Float16($0) })),
            Tensor(
                info: TensorInfo(name: "c.i8", dtype: .i8, shape: [7]),
                storage: TensorStorage(values: [Int8(-128), -1, 0, 1, 2, 3, 127])),
            Tensor(
                info: TensorInfo(name: "d.packed", dtype: .quantized(.packed(encoding)), shape: [3, 87]),
                storage: TensorStorage(bytes: payload)),
        ])
    return (graph, values)
}

// MARK: - Tests

@Suite("XXH64")
struct XXHash64Tests {
    @Test("the reference vectors, with and without a seed")
    func knownVectors() {
        #expect(XXHash64.hash([UInt8]()) == 0xEF46_DB37_51D8_E999)
        #expect(XXHash64.hash(Array("abc".utf8)) == 0x44BC_2CF5_AD77_0999)
        #expect(XXHash64.hash(Array("Nobody inspects the spammish repetition".utf8)) == 0xFBCE_A83C_8A37_8BF1)
        #expect(XXHash64.hash(Array("xxhash".utf8), seed: 20_141_025) == 0xB559_B98D_844E_0635)
        #expect(XXHash64.hex(0xEF46_DB37_51D8_E999) == "ef46db3751d8e999")
        #expect(XXHash64.hex(0x0F) == "000000000000000f")
    }

    @Test("streaming a 1000-byte buffer in odd-sized chunks gives the one-shot digest")
    func streaming() {
        let bytes = (0..<1000).map { UInt8(($0 * 31 + 7) % 251) }
        let oneShot = XXHash64.hash(bytes)
        #expect(oneShot == 0x9E33_00C1_CDE3_C58D)
        for sizes in [[1], [3], [7, 13], [31, 1, 33], [5, 64, 2], [999]] {
            var hasher = XXHash64()
            var offset = 0
            var index = 0
            bytes.withUnsafeBytes { raw in
                while offset < raw.count {
                    let size = min(sizes[index % sizes.count], raw.count - offset)
                    hasher.update(UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + size)]))
                    offset += size
                    index += 1
                }
            }
            #expect(hasher.digest() == oneShot, "chunks of \(sizes)")
        }
    }
}

@Suite("lpack")
struct PackedFormatTests {
    @Test("the worked example of SPEC.md §11: the writer produces its bytes and the reader its values")
    func workedExample() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let expected = WorkedExample.file
        #expect(expected.count == 460)
        #expect(WorkedExample.manifest.utf8.count == 344)
        #expect(XXHash64.hash(WorkedExample.member) == 0xDD77_5F5C_3342_0837)
        #expect(XXHash64.hash(Array(expected[32..<448])) == 0xBF9A_AAFE_ECCE_E9F6)
        let encoding = try WorkedExample.encoding()
        #expect(encoding.rowStride == 12)
        #expect(
            WorkedExample.values.withUnsafeBufferPointer { encoding.encodeExactly($0, rows: 1) }
                == WorkedExample.member)

        let written = directory.appendingPathComponent("written.lpack")
        _ = try PackedWriter().write(WorkedExample.graph(), to: written, options: WriteOptions())
        let bytes = [UInt8](try Data(contentsOf: written))
        #expect(firstDifference(bytes, expected) == nil, "the writer's output differs from SPEC.md §11")

        let url = directory.appendingPathComponent("spec.lpack")
        try Data(expected).write(to: url)
        #expect(PackedReader.sniff(url, prefix: Array(expected.prefix(16))))
        let graph = try PackedReader().read(url, options: ReadOptions())
        #expect(graph.sourceFormat == "lpack")
        #expect(graph.tensorNames == ["example.weight"])
        #expect(graph.metadata == Metadata([("general.name", .string("example"))]))
        #expect(graph.config == nil)
        let tensor = try graph.tensor(named: "example.weight")
        #expect(
            tensor.info
                == TensorInfo(name: "example.weight", dtype: .quantized(.packed(encoding)), shape: [1, 6]))
        #expect(try tensor.storage().isMapped)
        #expect(try TensorCodec.decode(tensor) == WorkedExample.values)
        let summary = try PackedReader.verify(url)
        #expect(summary.tensors == 1)
        #expect(summary.bytes == 12)
    }

    @Test("tensors and typed metadata round-trip, stored as they are and as zstd frames", arguments: ["none", "zstd"])
    func roundTrip(compression: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.lpack")
        let (graph, packedValues) = try roundTripGraph()
        let parameters: [String: String] = compression == "none" ? [:] : ["compression": compression]
        let report = try PackedWriter().write(graph, to: url, options: WriteOptions(parameters: parameters))
        #expect(report.tensorCount == graph.tensors.count)

        let bytes = [UInt8](try Data(contentsOf: url))
        #expect(report.bytesWritten == bytes.count)
        #expect(Array(bytes[0..<8]) == [0x4C, 0x50, 0x41, 0x43, 0x4B, 0x00, 0x0D, 0x0A])
        #expect(littleEndian(bytes[8..<16]) == 1, "major 1, minor 0")
        let (json, dataStart) = try manifest(of: bytes)
        #expect(dataStart % 64 == 0)
        #expect(XXHash64.hash(Array(bytes[32..<dataStart])) == littleEndian(bytes[24..<32]))
        #expect(json["format"]?.stringValue == "lpack")
        let stored = try members(of: bytes)
        #expect(stored.map(\.name) == graph.tensorNames)
        for member in stored {
            #expect(member.offset % 64 == 0, "\(member.name)")
            #expect(member.compression == compression, "\(member.name)")
        }

        let back = try PackedReader().read(url, options: ReadOptions())
        #expect(back.tensorNames == graph.tensorNames)
        #expect(back.metadata == graph.metadata)
        #expect(back.config == nil)
        #expect(back.tokenizer == nil)
        for tensor in graph.tensors {
            let other = try back.tensor(named: tensor.name)
            #expect(other.info == tensor.info)
            #expect(
                try other.storage().withUnsafeBytes { Array($0) } == tensor.storage().withUnsafeBytes { Array($0) },
                "\(tensor.name)")
        }
        #expect(try TensorCodec.decode(back.tensor(named: "d.packed")) == packedValues)
        let summary = try PackedReader.verify(url)
        #expect(summary.tensors == graph.tensors.count)
    }

    @Test(
        "a flipped byte in any member is caught: reading that tensor and verify() both name it",
        arguments: ["none", "zstd"])
    func damagedMember(compression: String) throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.lpack")
        let (graph, _) = try roundTripGraph()
        let parameters: [String: String] = compression == "none" ? [:] : ["compression": compression]
        _ = try PackedWriter().write(graph, to: url, options: WriteOptions(parameters: parameters))
        let original = [UInt8](try Data(contentsOf: url))
        let stored = try members(of: original)
        #expect(stored.count == graph.tensors.count)
        for (index, member) in stored.enumerated() {
            var damaged = original
            damaged[member.offset + member.length / 2] ^= 0x01
            let copy = directory.appendingPathComponent("damaged-\(index).lpack")
            try Data(damaged).write(to: copy)
            // The manifest is intact, so the file opens; only the damaged tensor fails.
            let back = try PackedReader().read(copy, options: ReadOptions())
            let error = #expect(throws: PackedFormatError.self, "\(member.name)") {
                try back.tensor(named: member.name).storage()
            }
            #expect(error?.description.contains("tensor '\(member.name)'") == true, "\(String(describing: error))")
            #expect(error?.problem.contains("checksum mismatch") == true, "\(String(describing: error))")
            for other in stored where other.name != member.name {
                _ = try back.tensor(named: other.name).storage()
            }
            let verifyError = #expect(throws: PackedFormatError.self, "\(member.name)") {
                try PackedReader.verify(copy)
            }
            #expect(verifyError?.field == "tensor '\(member.name)'", "\(String(describing: verifyError))")
            #expect(verifyError?.description.contains(member.name) == true)
        }
    }

    @Test("F16 scales alone make a file 2.0 as well, with \"scales\":\"F16\" in the dtype")
    func halfScalesVersion() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = SplitMix64(state: 13)
        let encoding = try randomEncoding(rowLength: 40, halfScales: true, using: &generator)
        let (url, values) = try writeMatrix(encoding, rows: 3, to: directory.appendingPathComponent("half.lpack"))
        let bytes = [UInt8](try Data(contentsOf: url))
        #expect(littleEndian(bytes[8..<16]) == 2)
        let dtype = try manifest(of: bytes).json["tensors"]?.arrayValue?.first?["dtype"]
        #expect(dtype?["scales"]?.stringValue == "F16")
        #expect(dtype?["zeros"] == nil)
        let back = try PackedReader().read(url, options: ReadOptions())
        #expect(try TensorCodec.decode(back.tensor(named: "w")) == values)
        // Labelled 1.0, the F16 scales are refused by name.
        let old = directory.appendingPathComponent("half-v1.lpack")
        try Data(relabelled(bytes, major: 1)).write(to: old)
        let error = #expect(throws: PackedFormatError.self) { try PackedReader().read(old, options: ReadOptions()) }
        #expect(error?.field == "tensor 'w'")
        #expect(error?.problem.contains("F16 scales need lpack 2.0") == true, "\(String(describing: error))")
    }

    @Test("a file with weight zero points is version 2.0; a 1.x file may not hold them, a major 3 is refused")
    func versions() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        var generator = SplitMix64(state: 12)
        let encoding = try randomEncoding(rowLength: 90, zeroPoints: true, using: &generator)
        let (url, values) = try writeMatrix(encoding, rows: 2, to: directory.appendingPathComponent("v2.lpack"))
        let bytes = [UInt8](try Data(contentsOf: url))
        #expect(littleEndian(bytes[8..<16]) == 2, "major 2, minor 0")
        let (json, _) = try manifest(of: bytes)
        #expect(json["version"]?.serialized() == "[2,0]")
        #expect(json["tensors"]?.arrayValue?.first?["dtype"]?["zeros"]?.boolValue == true)
        let back = try PackedReader().read(url, options: ReadOptions())
        #expect(try back.tensor(named: "w").info.dtype == .quantized(.packed(encoding)))
        #expect(try TensorCodec.decode(back.tensor(named: "w")) == values)

        /// The file labelled with another major version.
        func labelled(_ major: UInt8) throws -> URL {
            let target = directory.appendingPathComponent("v\(major).lpack")
            try Data(relabelled(bytes, major: major)).write(to: target)
            return target
        }
        let old = #expect(throws: PackedFormatError.self) {
            try PackedReader().read(labelled(1), options: ReadOptions())
        }
        #expect(old?.field == "tensor 'w'")
        #expect(
            old?.problem.contains("zero points and F16 scales need lpack 2.0") == true, "\(String(describing: old))")
        let future = #expect(throws: PackedFormatError.self) {
            try PackedReader().read(labelled(3), options: ReadOptions())
        }
        #expect(future?.field == "header.version")
    }

    @Test(
        "check finds what reading need not look at: non-zero padding, bytes after the last member, a header minor the manifest does not share, and frames that inflate to another size"
    )
    func verifyBeyondReading() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let (graph, _) = try roundTripGraph()
        func written(_ compression: String) throws -> [UInt8] {
            let url = directory.appendingPathComponent("\(compression).lpack")
            let parameters = compression == "none" ? [:] : ["compression": compression]
            _ = try PackedWriter().write(graph, to: url, options: WriteOptions(parameters: parameters))
            #expect(try PackedReader.verify(url).tensors == graph.tensors.count, "the writer's own file passes")
            return [UInt8](try Data(contentsOf: url))
        }
        /// The error `verify` gives for `bytes`, which reading accepts (the manifest is intact).
        func verifyError(_ bytes: [UInt8], _ label: String) throws -> PackedFormatError? {
            let copy = directory.appendingPathComponent("\(label).lpack")
            try Data(bytes).write(to: copy)
            _ = try PackedReader().read(copy, options: ReadOptions())
            return #expect(throws: PackedFormatError.self, "\(label)") { try PackedReader.verify(copy) }
        }
        let original = try written("none")
        let stored = try members(of: original)
        let gap = try #require(
            zip(stored, stored.dropFirst()).first { $0.0.offset + $0.0.length < $0.1.offset }, "the test needs a gap")
        var padded = original
        padded[gap.0.offset + gap.0.length] = 0x01
        #expect(
            try verifyError(padded, "padding")?.field == "padding at byte \(gap.0.offset + gap.0.length)")
        #expect(
            try verifyError(original + [0], "trailing")?.problem.hasPrefix("1 byte(s) after the last member") == true)
        var minor = original
        minor[12] = 1
        #expect(
            try verifyError(minor, "minor")?.description.hasSuffix(
                "header.version: minor version 1; the manifest says 1.0") == true)

        // A zstd member whose frame holds one byte too few or too many, its manifest entry and
        // checksums made consistent with it: only inflating finds it.
        let compressed = try written("zstd")
        let last = try #require(try members(of: compressed).last)
        let size = try #require(graph.tensors.last).info.byteCount()
        for (label, payloadSize) in [("short", size - 1), ("long", size + 1)] {
            let frame = try Zstd.compress([UInt8](repeating: 7, count: payloadSize), level: 3)
            var bytes = Array(compressed[..<last.offset]) + frame
            let dataStart = try manifest(of: bytes).dataStart
            var text = String(decoding: bytes[32..<dataStart], as: UTF8.self)
            let oldEntry = "\"length\":\(last.length),"
            text = text.replacingOccurrences(of: oldEntry, with: "\"length\":\(frame.count),")
            let oldHash = try #require(text.range(of: "\"xxh64\":\"", options: String.CompareOptions.backwards))
            text.replaceSubrange(
                oldHash.upperBound..<text.index(oldHash.upperBound, offsetBy: 16),
                with: XXHash64.hex(XXHash64.hash(frame)))
            // Re-pad with spaces to the region's length, as the writer's reservation does.
            var region = Array(text.utf8)
            while region.last == 0x20 { region.removeLast() }
            region += [UInt8](repeating: 0x20, count: dataStart - 32 - region.count)
            bytes.replaceSubrange(32..<dataStart, with: region)
            withUnsafeBytes(of: XXHash64.hash(region).littleEndian) { bytes.replaceSubrange(24..<32, with: $0) }
            let error = try verifyError(bytes, label)
            #expect(error?.field == "tensor '\(last.name)'", "\(label): \(String(describing: error))")
            #expect(
                error?.problem
                    == (payloadSize < size
                        ? "inflates to \(payloadSize) bytes, the manifest says \(size)"
                        : "inflates to more than the \(size) bytes the manifest says"),
                "\(label)")
        }
    }

    @Test("a flipped byte in the manifest or its padding is a manifest checksum mismatch")
    func damagedManifest() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("model.lpack")
        let (graph, _) = try roundTripGraph()
        _ = try PackedWriter().write(graph, to: url, options: WriteOptions())
        let original = [UInt8](try Data(contentsOf: url))
        let (_, dataStart) = try manifest(of: original)
        #expect(original[dataStart - 1] == 0x20, "the reservation leaves padding")
        for position in [40, dataStart / 2, dataStart - 1] {
            var damaged = original
            damaged[position] ^= 0x01
            let copy = directory.appendingPathComponent("damaged-\(position).lpack")
            try Data(damaged).write(to: copy)
            let error = #expect(throws: PackedFormatError.self, "byte \(position)") {
                try PackedReader().read(copy, options: ReadOptions())
            }
            #expect(error?.field == "manifest", "\(String(describing: error))")
            #expect(error?.problem.contains("checksum mismatch") == true, "\(String(describing: error))")
            #expect(throws: PackedFormatError.self, "byte \(position)") { try PackedReader.verify(copy) }
        }
    }
}

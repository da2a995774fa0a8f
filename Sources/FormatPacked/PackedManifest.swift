import Foundation
import LatheCore

/// A packed file that cannot be read: the path, the field or tensor involved, and what is wrong.
public struct PackedFormatError: Error, Equatable, CustomStringConvertible {
    public var path: String
    public var field: String
    public var problem: String

    public init(path: String, field: String, problem: String) {
        self.path = path
        self.field = field
        self.problem = problem
    }

    public var description: String { "\(path): \(field): \(problem)" }
}

extension PackedFormatError: LocalizedError {
    public var errorDescription: String? { description }
}

/// The fixed header and the JSON manifest of an `lpack` file (`formats/packed/SPEC.md` §2–3).
struct PackedManifest {
    static let magic: [UInt8] = Array("LPACK".utf8) + [0, 0x0D, 0x0A]
    /// The newest major version this reader reads; it reads every major from 1 up to it.
    static let majorVersion: UInt32 = 2
    static let minorVersion: UInt32 = 0
    static let readableMajors: ClosedRange<UInt32> = 1...majorVersion

    /// The version a file of these members is written as: the lowest that holds them, so a file
    /// without weight zero points or F16 scales (2.0's additions) stays readable by 1.x readers.
    static func version(of members: [Member]) -> (major: UInt32, minor: UInt32) {
        members.contains { $0.dtype.needsVersion2 } ? (majorVersion, minorVersion) : (1, 0)
    }
    /// magic, major, minor, manifest length, manifest checksum.
    static let headerSize = 32
    static let alignment = 64
    /// A manifest larger than this is refused before it is parsed.
    static let maxManifestSize = 256 << 20

    struct Member {
        var name: String
        var dtype: DType
        var shape: [Int]
        /// Absolute file offset of the stored bytes.
        var offset: Int
        /// Stored bytes (compressed size when compressed).
        var length: Int
        /// Payload bytes once decompressed.
        var size: Int
        var compression: String
        var checksum: UInt64
    }

    var metadata: Metadata
    var members: [Member]
    /// Where the members may start: the end of the manifest region (0 for a manifest being written).
    var dataStart = 0
    var writer: String
    var version: (major: UInt32, minor: UInt32)

    // MARK: - JSON

    func json() -> JSONValue {
        .object([
            ("format", .string("lpack")),
            ("version", .array([.int(Int(version.major)), .int(Int(version.minor))])),
            ("writer", .string(writer)),
            ("checksum", .string("xxh64")),
            ("metadata", metadata.jsonValue()),
            (
                "tensors",
                .array(
                    members.map { member in
                        .object([
                            ("name", .string(member.name)),
                            ("dtype", Self.encode(member.dtype)),
                            ("shape", .array(member.shape.map { .int($0) })),
                            ("offset", .int(member.offset)),
                            ("length", .int(member.length)),
                            ("size", .int(member.size)),
                            ("compression", .string(member.compression)),
                            ("xxh64", .string(XXHash64.hex(member.checksum))),
                        ])
                    })
            ),
        ])
    }

    init(metadata: Metadata, members: [Member], writer: String) {
        self.metadata = metadata
        self.members = members
        self.writer = writer
        version = Self.version(of: members)
    }

    /// Parses and checks a manifest: every field present and typed, names unique, members inside
    /// the file, in order, not overlapping, and uncompressed ones aligned with the size their dtype
    /// and shape imply.
    init(json: JSONValue, path: String, fileSize: Int, dataStart: Int, headerMajor: UInt32) throws(PackedFormatError) {
        func fail(_ field: String, _ problem: String) -> PackedFormatError {
            PackedFormatError(path: path, field: field, problem: problem)
        }
        guard json["format"]?.stringValue == "lpack" else { throw fail("manifest.format", "is not \"lpack\"") }
        guard let version = json["version"]?.arrayValue?.compactMap(\.intValue), version.count == 2,
            version[0] == Int(headerMajor), version[1] >= 0, version[1] <= Int(UInt32.max)
        else {
            throw fail(
                "manifest.version",
                "\(json["version"]?.serialized() ?? "missing"); the header says major version \(headerMajor)")
        }
        self.version = (headerMajor, UInt32(version[1]))
        writer = json["writer"]?.stringValue ?? ""
        guard let metadataJSON = json["metadata"] else { throw fail("manifest.metadata", "missing") }
        do {
            metadata = try Metadata(json: metadataJSON, field: "manifest.metadata")
        } catch {
            throw fail("manifest.metadata", error.errorDescription ?? "\(error)")
        }
        guard let entries = json["tensors"]?.arrayValue else { throw fail("manifest.tensors", "missing") }
        var seen = Set<String>()
        self.dataStart = dataStart
        var end = dataStart
        members = []
        for (index, entry) in entries.enumerated() {
            guard let name = entry["name"]?.stringValue, !name.isEmpty else {
                throw fail("manifest.tensors[\(index)].name", "missing")
            }
            let field = "tensor '\(name)'"
            guard seen.insert(name).inserted else { throw fail(field, "appears twice in the manifest") }
            guard let dtypeJSON = entry["dtype"], let dtype = Self.decodeDType(dtypeJSON) else {
                throw fail(field, "unknown dtype \(entry["dtype"]?.serialized() ?? "missing")")
            }
            guard !dtype.needsVersion2 || headerMajor >= 2 else {
                throw fail(
                    field,
                    "weight zero points and F16 scales need lpack 2.0; this file says \(headerMajor).\(version[1])")
            }
            guard let shape = entry["shape"]?.arrayValue?.compactMap(\.intValue),
                shape.count == entry["shape"]?.arrayValue?.count, shape.allSatisfy({ $0 >= 0 })
            else { throw fail(field, "shape is not a list of non-negative integers") }
            guard let offset = entry["offset"]?.intValue, let length = entry["length"]?.intValue,
                let size = entry["size"]?.intValue, offset >= 0, length >= 0, size >= 0
            else { throw fail(field, "offset, length and size must be non-negative integers") }
            let compression = entry["compression"]?.stringValue ?? "none"
            guard ["none", "zstd"].contains(compression) else {
                throw fail(field, "unknown compression '\(compression)' (none or zstd)")
            }
            guard let hex = entry["xxh64"]?.stringValue, hex.utf8.count == 16, hex.allSatisfy(\.isHexDigit),
                let checksum = UInt64(hex, radix: 16)
            else {
                throw fail(field, "xxh64 must be 16 hex digits")
            }
            let expected: Int
            do {
                expected = try dtype.byteCount(for: Shape(shape))
            } catch {
                throw fail(field, "\(dtype) cannot hold shape \(shape): \(error.errorDescription ?? "")")
            }
            guard size == expected else {
                throw fail(field, "size \(size) differs from the \(expected) bytes of \(dtype) \(Shape(shape))")
            }
            if compression == "none" {
                guard length == size else { throw fail(field, "stored length \(length) differs from size \(size)") }
                guard offset % Self.alignment == 0 else {
                    throw fail(field, "offset \(offset) is not a multiple of \(Self.alignment)")
                }
            }
            guard offset >= end else {
                throw fail(field, "offset \(offset) overlaps the header or the previous member (ends at \(end))")
            }
            let (memberEnd, overflow) = offset.addingReportingOverflow(length)
            guard !overflow, memberEnd <= fileSize else {
                throw fail(field, "\(length) bytes at offset \(offset) run past the end of the \(fileSize)-byte file")
            }
            end = memberEnd
            members.append(
                Member(
                    name: name, dtype: dtype, shape: shape, offset: offset, length: length, size: size,
                    compression: compression, checksum: checksum))
        }
    }

    // MARK: - dtypes

    static func encode(_ dtype: DType) -> JSONValue {
        guard case .quantized(.packed(let encoding)) = dtype else { return .string(dtype.description) }
        let segments = encoding.segments.map {
            JSONValue.array([.int($0.start), .int($0.count), .int($0.bits), .int($0.slot)])
        }
        return .object(
            [("kind", .string("packed")), ("slots", .int(encoding.slotCount))]
                + (encoding.halfScales ? [("scales", .string("F16"))] : [])
                + (encoding.zeroPoints ? [("zeros", .bool(true))] : []) + [("segments", .array(segments))])
    }

    static func decodeDType(_ json: JSONValue) -> DType? {
        if let name = json.stringValue {
            return (DType.scalarTypes + GGMLBlockType.allCases.map { .quantized(.ggml($0)) }).first {
                $0.description == name
            }
        }
        guard json["kind"]?.stringValue == "packed", let slots = json["slots"]?.intValue, slots > 0, slots < 1 << 20,
            let list = json["segments"]?.arrayValue
        else { return nil }
        let zeros = json["zeros"] == nil ? false : json["zeros"]?.boolValue
        let scales = json["scales"] == nil ? "F32" : json["scales"]?.stringValue
        guard let zeros, let scales, ["F32", "F16"].contains(scales) else { return nil }
        var segments: [PackedIntegerEncoding.Segment] = []
        for item in list {
            guard let values = item.arrayValue?.compactMap(\.intValue), values.count == 4 else { return nil }
            segments.append(.init(start: values[0], count: values[1], bits: values[2], slot: values[3]))
        }
        return try? .quantized(
            .packed(
                PackedIntegerEncoding(
                    segments: segments, slotCount: slots, zeroPoints: zeros, halfScales: scales == "F16")))
    }
}

extension DType {
    /// Whether this is a packed encoding with weight zero points or F16 scales (lpack 2.0).
    var needsVersion2: Bool {
        guard case .quantized(.packed(let encoding)) = self else { return false }
        return encoding.needsVersion2
    }
}

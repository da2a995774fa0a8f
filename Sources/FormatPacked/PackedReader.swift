import Compression
import Foundation
import LatheCore

/// Reads Lathe's packed format. Stored members are mapped, not copied; each member's checksum is
/// verified the first time its bytes are used (`verify` checks them all at once, as `lathe check`
/// does), and compressed members are inflated on use.
public struct PackedReader: FormatReader {
    public static let formatID = "lpack"
    public static let summary = "Lathe's packed format (mapped, checksummed members; zstd members inflated on use)"

    public init() {}

    public static func sniff(_ url: URL, prefix: [UInt8]) -> Bool { prefix.starts(with: PackedManifest.magic) }

    public func read(_ url: URL, options: ReadOptions) throws -> ModelGraph {
        let file = try MappedFile(path: url.path)
        let manifest = try Self.manifest(file)
        var graph = try ModelGraph(source: url.path, metadata: manifest.metadata)
        graph.sourceFormat = Self.formatID
        graph.config = try LlamaConfig(metadata: manifest.metadata, source: url.path)
        graph.tokenizer = try TokenizerDescription(metadata: manifest.metadata, source: url.path)
        graph.config?.tiedEmbeddings = !manifest.members.contains { $0.name == LlamaTensorNames.head }
        for member in manifest.members {
            let info = TensorInfo(name: member.name, dtype: member.dtype, shape: Shape(member.shape))
            if member.compression == "none" {
                let storage = try TensorStorage(file: file, offset: member.offset, length: member.length)
                let checks = CheckedOnce()
                try graph.append(
                    Tensor(info: info) {
                        try checks.run {
                            try Self.verifyChecksum(storage, member, path: url.path)
                            try ScaleCheck.check(storage, info, path: url.path)
                        }
                        return storage
                    })
            } else {
                // The checksum covers the stored (compressed) bytes, the scales the inflated ones.
                let (checksum, scales) = (CheckedOnce(), CheckedOnce())
                try graph.append(
                    Tensor(info: info) {
                        let stored = try TensorStorage(file: file, offset: member.offset, length: member.length)
                        try checksum.run { try Self.verifyChecksum(stored, member, path: url.path) }
                        let storage = TensorStorage(bytes: try Self.inflate(stored, member, path: url.path))
                        try scales.run { try ScaleCheck.check(storage, info, path: url.path) }
                        return storage
                    })
            }
        }
        options.diagnostics.info(
            "\(url.lastPathComponent): lpack v\(manifest.version.major), \(manifest.members.count) tensors")
        return graph
    }

    /// Each member's stored byte count (its compressed size when compressed), by tensor name.
    public static func storedSizes(_ url: URL) throws -> [String: Int] {
        let manifest = try manifest(MappedFile(path: url.path))
        return Dictionary(uniqueKeysWithValues: manifest.members.map { ($0.name, $0.length) })
    }

    /// Everything `lathe check` can check beyond what reading requires: every member's checksum, every
    /// compressed member inflated to its size, the header's minor version equal to the manifest's, the
    /// gaps between members zero and nothing after the last, as the writer leaves them (§9). The
    /// error names the first damage: the tensor, or the bytes between which tensors.
    public static func verify(_ url: URL) throws -> (tensors: Int, bytes: Int) {
        let file = try MappedFile(path: url.path)
        let manifest = try manifest(file)
        func fail(_ field: String, _ problem: String) -> PackedFormatError {
            PackedFormatError(path: url.path, field: field, problem: problem)
        }
        let headerMinor = try file.withBytes { $0.loadUnaligned(fromByteOffset: 12, as: UInt32.self).littleEndian }
        guard headerMinor == manifest.version.minor else {
            throw fail(
                "header.version",
                "minor version \(headerMinor); the manifest says \(manifest.version.major).\(manifest.version.minor)")
        }
        var bytes = 0
        var end = manifest.dataStart
        for member in manifest.members {
            try requireZeros(file, end..<member.offset, path: url.path)
            let storage = try TensorStorage(file: file, offset: member.offset, length: member.length)
            try verifyChecksum(storage, member, path: url.path)
            if member.compression != "none" { try checkInflation(storage, member, path: url.path) }
            storage.dropCachedPages()
            bytes += member.length
            end = member.offset + member.length
        }
        guard end == file.size else {
            throw fail(
                "file", "\(file.size - end) byte(s) after the last member, which ends at \(end): the writer writes none"
            )
        }
        return (manifest.members.count, bytes)
    }

    /// Throws when a byte of `range` is not zero (the writer's padding before a member).
    private static func requireZeros(_ file: MappedFile, _ range: Range<Int>, path: String) throws {
        guard !range.isEmpty else { return }
        let offset = try file.withBytes { bytes in
            UnsafeRawBufferPointer(rebasing: bytes[range]).firstIndex { $0 != 0 }
        }
        if let offset {
            throw PackedFormatError(
                path: path, field: "padding at byte \(range.lowerBound + offset)",
                problem: "not zero (the gap before the member at \(range.upperBound)): the file is damaged")
        }
    }

    /// That a zstd member inflates to exactly `size` bytes, counted as they stream past: a frame that
    /// claims gigabytes is not held in memory to be checked.
    private static func checkInflation(_ stored: TensorStorage, _ member: PackedManifest.Member, path: String) throws {
        var count = 0
        try inflating(member, path: path) {
            let stream = try ZstdDecompressionStream()
            try stored.withUnsafeBytes { bytes in
                try stream.decompress(bytes, limit: member.size) { count += $0.count }
            }
            try stream.finish()
            return count
        }
    }

    /// A zstd member's payload, exactly `size` bytes, in one piece (reading); errors name the tensor.
    static func inflate(_ stored: TensorStorage, _ member: PackedManifest.Member, path: String) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try inflating(member, path: path) {
            bytes = try stored.withUnsafeBytes { try Zstd.decompress($0, limit: member.size) }
            return bytes.count
        }
        return bytes
    }

    /// Runs `inflate` (which returns how many bytes came out, at most `size`), turning its failures
    /// and a short payload into errors naming the tensor.
    private static func inflating(_ member: PackedManifest.Member, path: String, _ inflate: () throws -> Int) throws {
        func fail(_ problem: String) -> PackedFormatError {
            PackedFormatError(path: path, field: "tensor '\(member.name)'", problem: problem)
        }
        let count: Int
        do {
            count = try inflate()
        } catch CompressionError.sizeLimitExceeded {
            throw fail("inflates to more than the \(member.size) bytes the manifest says")
        } catch {
            throw fail("does not inflate: \(error.localizedDescription)")
        }
        guard count == member.size else { throw fail("inflates to \(count) bytes, the manifest says \(member.size)") }
    }

    /// Throws, naming the member, when its stored bytes do not have the manifest's XXH64.
    static func verifyChecksum(_ storage: TensorStorage, _ member: PackedManifest.Member, path: String) throws {
        let digest = storage.withUnsafeBytes { XXHash64.hash($0) }
        guard digest == member.checksum else {
            throw PackedFormatError(
                path: path, field: "tensor '\(member.name)'",
                problem:
                    "checksum mismatch (xxh64 \(XXHash64.hex(digest)), manifest \(XXHash64.hex(member.checksum))): the file is damaged"
            )
        }
    }

    /// The header and manifest, checked (magic, version, manifest checksum, member table).
    static func manifest(_ file: MappedFile) throws -> PackedManifest {
        let path = file.path
        func fail(_ field: String, _ problem: String) -> PackedFormatError {
            PackedFormatError(path: path, field: field, problem: problem)
        }
        guard file.size >= PackedManifest.headerSize else {
            throw fail("header", "\(file.size) bytes is shorter than the \(PackedManifest.headerSize)-byte header")
        }
        return try file.withBytes { bytes in
            guard bytes.starts(with: PackedManifest.magic) else {
                throw fail("header", "not an lpack file (bad magic)")
            }
            let major = bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian
            let readable = PackedManifest.readableMajors
            guard readable.contains(major) else {
                throw fail(
                    "header.version",
                    "major version \(major); this reader reads \(readable.lowerBound) to \(readable.upperBound)")
            }
            let length = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self).littleEndian
            let checksum = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self).littleEndian
            guard length <= UInt64(PackedManifest.maxManifestSize),
                Int(length) <= file.size - PackedManifest.headerSize
            else {
                throw fail("header.manifest_length", "\(length) bytes does not fit in the \(file.size)-byte file")
            }
            let region = UnsafeRawBufferPointer(
                rebasing: bytes[PackedManifest.headerSize..<(PackedManifest.headerSize + Int(length))])
            guard XXHash64.hash(region) == checksum else {
                throw fail("manifest", "checksum mismatch: the manifest is damaged")
            }
            let json: JSONValue
            do {
                json = try JSONValue.parse(region)
            } catch let error as JSONParseError {
                throw fail("manifest", "invalid JSON at byte \(error.offset): \(error.reason)")
            }
            return try PackedManifest(
                json: json, path: path, fileSize: file.size, dataStart: PackedManifest.headerSize + Int(length),
                headerMajor: major)
        }
    }
}

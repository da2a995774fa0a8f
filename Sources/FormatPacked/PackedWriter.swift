import Compression
import Foundation
import LatheCore

/// Writes Lathe's packed format (`lpack`): the header and manifest first, then each tensor as one
/// member aligned to 64 bytes, stored as is (mappable) or as an independent zstd frame, each with
/// an XXH64 checksum of its stored bytes. Tensors stream through one at a time; the manifest's
/// space is reserved up front and filled in once every member's place and checksum are known.
public struct PackedWriter: FormatWriter {
    public static let formatID = "lpack"
    public static let fileExtension: String? = "lpack"
    public static let parameterNames = ["compression", "level"]

    public static func validate(parameters: [String: String]) throws(LatheError) {
        if let compression = parameters["compression"], !["none", "zstd"].contains(compression) {
            throw .invalidValue(field: "compression", value: compression, expected: "none or zstd")
        }
        if let level = parameters["level"], !(Int(level).map { (1...22).contains($0) } ?? false) {
            throw .invalidValue(field: "level", value: level, expected: "a zstd level from 1 to 22")
        }
    }
    public static let summary =
        "Lathe's packed format: int4/int8 codes with scales, transforms, checksums, optional zstd"

    public init() {}

    public static func supports(_ dtype: DType) -> Bool { dtype != .c64 }

    public func write(_ graph: ModelGraph, to url: URL, options: WriteOptions) throws -> WriteReport {
        guard graph.naming == .huggingface else {
            throw LatheError.invalidValue(
                field: "tensor layout", value: "\(graph.naming)", expected: "the canonical (HF) layout for lpack")
        }
        try Self.validate(parameters: options.parameters)
        let compression = options.parameters["compression"] ?? "none"
        let level = options.parameters["level"].flatMap { Int($0) } ?? Zstd.defaultLevel
        var metadata = graph.metadata
        graph.config?.store(in: &metadata)
        graph.tokenizer?.store(in: &metadata)
        var members = try graph.tensors.map { tensor in
            PackedManifest.Member(
                name: tensor.name, dtype: tensor.info.dtype, shape: tensor.info.shape.dimensions, offset: Int.max,
                length: Int.max, size: try tensor.info.byteCount(), compression: compression, checksum: .max)
        }
        let writerName = "lathe \(LatheVersion.current)"
        // The largest the manifest can get: every number at its widest.
        let reserved = Array(
            PackedManifest(metadata: metadata, members: members, writer: writerName).json().serialized().utf8)
        let alignment = PackedManifest.alignment
        let dataStart = (PackedManifest.headerSize + reserved.count + alignment - 1) / alignment * alignment
        let manifestRegion = dataStart - PackedManifest.headerSize

        let output = try AtomicOutput(destination: url, overwrite: options.overwrite)
        let written = try output.run { temporary in
            let writer = try BinaryWriter(creating: temporary)
            try writer.write(PackedManifest.magic)
            let version = PackedManifest.version(of: members)
            try writer.write(version.major)
            try writer.write(version.minor)
            try writer.write(UInt64(manifestRegion))
            try writer.write(UInt64(0))  // manifest checksum, filled in last
            try writer.write([UInt8](repeating: 0x20, count: manifestRegion))
            for (index, tensor) in graph.tensors.enumerated() {
                try writer.pad(to: alignment)
                let start = writer.position
                var hasher = XXHash64()
                let store = { (bytes: UnsafeRawBufferPointer) throws in
                    hasher.update(bytes)
                    try writer.write(bytes)
                }
                if compression == "zstd" {
                    let stream = try ZstdCompressionStream(level: level)
                    try tensor.forEachChunk { try stream.compress($0, into: store) }
                    try stream.finish(into: store)
                } else {
                    try tensor.forEachChunk(store)
                }
                members[index].offset = start
                members[index].length = writer.position - start
                members[index].checksum = hasher.digest()
                options.diagnostics.progress(
                    .writing, fraction: Double(index + 1) / Double(graph.tensors.count),
                    "\(tensor.name) (\(tensor.info.dtype))")
            }
            try writer.close()
            var manifest = Array(
                PackedManifest(metadata: metadata, members: members, writer: writerName).json().serialized().utf8)
            // Cannot happen (no real number is wider than its placeholder), but never write past the region.
            guard manifest.count <= manifestRegion else {
                throw LatheError.invalidValue(
                    field: "lpack manifest", value: "\(manifest.count) bytes",
                    expected: "at most the \(manifestRegion) bytes reserved for it")
            }
            manifest += [UInt8](repeating: 0x20, count: manifestRegion - manifest.count)
            let handle = try FileHandle(forWritingTo: temporary)
            defer { try? handle.close() }
            try handle.seek(toOffset: 24)
            var checksum = XXHash64.hash(manifest).littleEndian
            try handle.write(contentsOf: Data(bytes: &checksum, count: 8))
            try handle.write(contentsOf: Data(manifest))
            try handle.synchronize()
            return writer.position
        }
        return WriteReport(path: url.path, files: [url.path], bytesWritten: written, tensorCount: graph.tensors.count)
    }
}

import Foundation
import LatheCore

/// One tensor-info record of a GGUF file.
struct GGUFTensorRecord: Equatable {
    var name: String
    /// Dimensions as stored: `ne0` (contiguous) first.
    var ne: [Int]
    var dtype: DType
    /// Offset relative to the data section.
    var offset: Int
    var byteCount: Int
}

/// The parsed header of a GGUF file: everything before the data section, fully validated against
/// the rules ggml's own reader enforces (formats.md §2.3).
struct GGUFHeader {
    static let defaultAlignment = 32
    static let maxStringLength = 1 << 30
    /// 16 Mi elements: 64 times the largest vocabularies (token lists, scores and merges are the
    /// largest arrays models carry), and at most about 400 MB as values.
    static let maxArrayCount = 1 << 24
    static let maxNameLength = 63

    var version: UInt32
    var metadata: Metadata
    var tensors: [GGUFTensorRecord]
    var alignment: Int
    var dataStart: Int

    /// Parses and validates the header of the file at `bytes` (the whole file).
    init(_ bytes: UnsafeRawBufferPointer, path: String) throws(GGUFError) {
        var cursor = ByteCursor(bytes, path: path)
        let magic = try cursor.read(UInt32.self, "magic")
        guard magic == 0x4655_4747 else {
            throw GGUFError(
                path: path, field: "magic", problem: "not a GGUF file (the first four bytes are not 'GGUF')")
        }
        version = try cursor.read(UInt32.self, "version")
        guard version & 0xFFFF != 0 else {
            throw GGUFError(
                path: path, field: "version",
                problem: "the file is byte-swapped (big-endian); only little-endian GGUF is supported")
        }
        guard version == 2 || version == 3 else {
            throw GGUFError(
                path: path, field: "version", problem: "version \(version) is not supported (Lathe reads 2 and 3)")
        }
        let tensorCount = try cursor.readCount("tensor_count", limit: bytes.count / 24)
        let kvCount = try cursor.readCount("kv_count", limit: bytes.count / 13)

        metadata = Metadata()
        for _ in 0..<kvCount {
            let key = try cursor.readString("metadata key")
            guard !key.isEmpty else { throw GGUFError(path: path, field: "metadata key", problem: "empty key") }
            let field = "key '\(key)'"
            guard metadata[key] == nil else { throw GGUFError(path: path, field: field, problem: "duplicate key") }
            let rawType = try cursor.read(UInt32.self, field)
            guard let type = MetadataType(rawValue: rawType) else {
                throw GGUFError(path: path, field: field, problem: "unknown value type \(rawType)")
            }
            metadata[key] = try cursor.readValue(type, field: field)
        }

        alignment = Self.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard case .uint32(let a) = value, a > 0, a & (a - 1) == 0 else {
                throw GGUFError(
                    path: path, field: "key 'general.alignment'",
                    problem: "must be a UINT32 power of two, got \(value.summary) (\(value.type))")
            }
            alignment = Int(a)
        }

        tensors = []
        var names = Set<String>()
        var expectedOffset = 0
        for index in 0..<tensorCount {
            let name = try cursor.readString("name of tensor \(index)")
            let field = "tensor '\(name)'"
            guard name.utf8.count <= Self.maxNameLength else {
                throw GGUFError(
                    path: path, field: field, problem: "name is \(name.utf8.count) bytes; ggml allows at most 63")
            }
            guard names.insert(name).inserted else {
                throw GGUFError(path: path, field: field, problem: "duplicate tensor name")
            }
            let rank = try cursor.read(UInt32.self, field)
            guard rank <= 4 else {
                throw GGUFError(path: path, field: field, problem: "\(rank) dimensions; ggml allows at most 4")
            }
            var ne: [Int] = []
            for _ in 0..<rank {
                let dimension = try cursor.read(Int64.self, field)
                guard dimension >= 0 else {
                    throw GGUFError(path: path, field: field, problem: "negative dimension \(dimension)")
                }
                ne.append(Int(dimension))
            }
            let typeID = try cursor.read(UInt32.self, field)
            guard typeID < GGMLTypeID.count, !GGMLTypeID.removed.contains(typeID) else {
                throw GGUFError(path: path, field: field, problem: "unknown ggml type id \(typeID)")
            }
            guard let dtype = GGMLTypeID.dtype(typeID) else {
                let name = GGMLTypeID.unsupportedNames[typeID] ?? "id \(typeID)"
                throw GGUFError(path: path, field: field, problem: "ggml type \(name) cannot be decoded by Lathe yet")
            }
            let offset = try cursor.read(UInt64.self, field)
            let byteCount: Int
            do {
                byteCount = try dtype.byteCount(for: Shape(ne.reversed()))
            } catch {
                throw GGUFError(path: path, field: field, problem: error.errorDescription ?? "\(error)")
            }
            guard offset == UInt64(expectedOffset) else {
                throw GGUFError(
                    path: path, field: field,
                    problem:
                        "data offset \(offset), expected \(expectedOffset) (tensors must follow each other in info order with alignment padding)"
                )
            }
            // The data section must fit in the file: checked tensor by tensor, before the running
            // offset could overflow (a fuzzed file of huge tensors did).
            guard byteCount <= bytes.count - expectedOffset else {
                throw GGUFError(
                    path: path, field: field,
                    problem:
                        "\(byteCount) bytes of data at offset \(expectedOffset) do not fit in the \(bytes.count)-byte file; the file is truncated or corrupt"
                )
            }
            tensors.append(
                GGUFTensorRecord(name: name, ne: ne, dtype: dtype, offset: expectedOffset, byteCount: byteCount))
            expectedOffset += align(byteCount, alignment)
        }

        dataStart = tensors.isEmpty ? cursor.offset : align(cursor.offset, alignment)
        for tensor in tensors {
            let end = dataStart + tensor.offset + tensor.byteCount
            guard end <= bytes.count else {
                throw GGUFError(
                    path: path, field: "tensor '\(tensor.name)'",
                    problem: "data ends at byte \(end) but the file has \(bytes.count) bytes; the file is truncated")
            }
        }
    }
}

func align(_ value: Int, _ alignment: Int) -> Int { (value + alignment - 1) / alignment * alignment }

/// Bounds-checked little-endian reads over a byte buffer; every failure names the field.
struct ByteCursor {
    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    private func need(_ count: Int, _ field: String) throws(GGUFError) {
        guard count >= 0, count <= bytes.count - offset else {
            throw GGUFError(
                path: path, field: field,
                problem:
                    "needs \(count) bytes at offset \(offset) but the file ends at \(bytes.count); the file is truncated"
            )
        }
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, _ field: String) throws(GGUFError) -> T {
        try need(MemoryLayout<T>.size, field)
        defer { offset += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    /// A u64 count that must be non-negative as int64 and below `limit` (each item takes bytes).
    mutating func readCount(_ field: String, limit: Int) throws(GGUFError) -> Int {
        let raw = try read(UInt64.self, field)
        guard raw <= UInt64(Int64.max), Int(raw) <= limit else {
            throw GGUFError(
                path: path, field: field,
                problem: "count \(raw) is larger than the file could hold; the file is truncated or corrupt")
        }
        return Int(raw)
    }

    mutating func readString(_ field: String) throws(GGUFError) -> String {
        let length = try read(UInt64.self, field)
        guard length <= UInt64(GGUFHeader.maxStringLength) else {
            throw GGUFError(path: path, field: field, problem: "string length \(length) exceeds 1 GiB")
        }
        try need(Int(length), field)
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + Int(length))])
        offset += Int(length)
        guard let string = UTF8Text.string(slice) else {
            throw GGUFError(path: path, field: field, problem: "string is not valid UTF-8")
        }
        return string
    }

    /// The fewest bytes a value of `type` takes in the file (a string: its 8-byte length).
    static func smallestSize(of type: MetadataType) -> Int {
        switch type {
        case .uint8, .int8, .bool: 1
        case .uint16, .int16: 2
        case .uint32, .int32, .float32: 4
        case .uint64, .int64, .float64, .string: 8
        case .array: 12
        }
    }

    mutating func readValue(_ type: MetadataType, field: String) throws(GGUFError) -> MetadataValue {
        switch type {
        case .uint8: return .uint8(try read(UInt8.self, field))
        case .int8: return .int8(try read(Int8.self, field))
        case .uint16: return .uint16(try read(UInt16.self, field))
        case .int16: return .int16(try read(Int16.self, field))
        case .uint32: return .uint32(try read(UInt32.self, field))
        case .int32: return .int32(try read(Int32.self, field))
        case .uint64: return .uint64(try read(UInt64.self, field))
        case .int64: return .int64(try read(Int64.self, field))
        case .float32: return .float32(Float(bitPattern: try read(UInt32.self, field)))
        case .float64: return .float64(Double(bitPattern: try read(UInt64.self, field)))
        case .bool:
            let raw = try read(UInt8.self, field)
            guard raw <= 1 else {
                throw GGUFError(path: path, field: field, problem: "bool byte is \(raw), not 0 or 1")
            }
            return .bool(raw == 1)
        case .string: return .string(try readString(field))
        case .array:
            let rawElement = try read(UInt32.self, field)
            guard let element = MetadataType(rawValue: rawElement) else {
                throw GGUFError(path: path, field: field, problem: "unknown array element type \(rawElement)")
            }
            guard element != .array else {
                throw GGUFError(path: path, field: field, problem: "nested arrays are not allowed")
            }
            let count = try readCount(field, limit: (bytes.count - offset) / Self.smallestSize(of: element))
            guard count <= GGUFHeader.maxArrayCount else {
                // Held as values, an element takes 24 bytes or more whatever its size in the file.
                throw GGUFError(
                    path: path, field: field,
                    problem: "array of \(count) elements; Lathe reads at most \(GGUFHeader.maxArrayCount) per array")
            }
            var values: [MetadataValue] = []
            values.reserveCapacity(count)
            for _ in 0..<count { values.append(try readValue(element, field: field)) }
            return .array(element, values)
        }
    }
}

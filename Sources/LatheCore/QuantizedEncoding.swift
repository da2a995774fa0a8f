/// ggml's block types, by their on-disk id (`enum ggml_type`). Case names keep ggml's spelling.
// swift-format-ignore: AlwaysUseLowerCamelCase
public enum GGMLBlockType: UInt32, CaseIterable, Sendable {
    case q4_0 = 2
    case q4_1 = 3
    case q5_0 = 6
    case q5_1 = 7
    case q8_0 = 8
    case q8_1 = 9
    case q2_K = 10
    case q3_K = 11
    case q4_K = 12
    case q5_K = 13
    case q6_K = 14
    case q8_K = 15

    /// Elements per block.
    public var blockSize: Int {
        switch self {
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1: 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: 256
        }
    }

    /// Bytes per block.
    public var bytesPerBlock: Int {
        switch self {
        case .q4_0: 18
        case .q4_1: 20
        case .q5_0: 22
        case .q5_1: 24
        case .q8_0: 34
        case .q8_1: 36
        case .q2_K: 84
        case .q3_K: 110
        case .q4_K: 144
        case .q5_K: 176
        case .q6_K: 210
        case .q8_K: 292
        }
    }

    /// The name llama.cpp prints (`Q4_0`, `Q6_K`, …).
    public var name: String { String(describing: self).uppercased() }
}

/// How a quantized tensor's payload is laid out.
public enum QuantizedEncoding: Hashable, Sendable, CustomStringConvertible {
    case ggml(GGMLBlockType)
    case packed(PackedIntegerEncoding)

    public var bitsPerWeight: Double {
        switch self {
        case .ggml(let type): Double(type.bytesPerBlock * 8) / Double(type.blockSize)
        case .packed(let encoding): encoding.bitsPerWeight
        }
    }

    /// Byte size of the payload. Blocks never straddle rows, so the row length must divide evenly.
    public func byteCount(for shape: Shape) throws(LatheError) -> Int {
        let count = try shape.elementCount()
        let rowLength = shape.dimensions.last ?? 1
        switch self {
        case .ggml(let type):
            guard rowLength % type.blockSize == 0 else {
                throw .invalidShape(
                    shape.dimensions,
                    reason: "row length \(rowLength) is not a multiple of \(type.name)'s block of \(type.blockSize)")
            }
            return count / type.blockSize * type.bytesPerBlock
        case .packed(let encoding):
            guard rowLength == encoding.rowLength else {
                throw .invalidShape(
                    shape.dimensions,
                    reason: "row length \(rowLength) differs from the packed layout's \(encoding.rowLength) columns")
            }
            guard let bytes = encoding.checkedByteCount(rows: rowLength == 0 ? 0 : count / rowLength) else {
                throw .invalidShape(shape.dimensions, reason: "the packed payload's byte size overflows")
            }
            return bytes
        }
    }

    public var description: String {
        switch self {
        case .ggml(let type): return type.name
        case .packed(let encoding): return encoding.description
        }
    }
}

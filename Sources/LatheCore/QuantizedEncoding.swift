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

/// Lathe's packed integer encoding: `bits`-bit integers with one scale (and, if asymmetric, one zero
/// point) per row or per group of `groupSize` consecutive elements of a row. Scales travel in a
/// companion tensor, so the payload is just the packed integers, rows padded to whole bytes.
public struct PackedIntegerEncoding: Hashable, Sendable {
    public enum Granularity: Hashable, Sendable {
        case perRow
        case perGroup(Int)
    }
    public let bits: Int
    public let granularity: Granularity
    public let symmetric: Bool

    public init(bits: Int, granularity: Granularity, symmetric: Bool = true) throws(LatheError) {
        guard bits == 4 || bits == 8 else {
            throw .invalidValue(field: "bits", value: "\(bits)", expected: "4 or 8")
        }
        if case .perGroup(let size) = granularity, size <= 0 || size % 2 != 0 {
            throw .invalidValue(field: "group size", value: "\(size)", expected: "a positive even number")
        }
        self.bits = bits
        self.granularity = granularity
        self.symmetric = symmetric
    }
}

/// How a quantized tensor's payload is laid out.
public enum QuantizedEncoding: Hashable, Sendable, CustomStringConvertible {
    case ggml(GGMLBlockType)
    case packed(PackedIntegerEncoding)

    public var bitsPerWeight: Double {
        switch self {
        case .ggml(let type): Double(type.bytesPerBlock * 8) / Double(type.blockSize)
        case .packed(let encoding): Double(encoding.bits)
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
            if case .perGroup(let size) = encoding.granularity, rowLength % size != 0 {
                throw .invalidShape(
                    shape.dimensions, reason: "row length \(rowLength) is not a multiple of the group size \(size)")
            }
            let rows = rowLength == 0 ? 0 : count / rowLength
            return rows * ((rowLength * encoding.bits + 7) / 8)
        }
    }

    public var description: String {
        switch self {
        case .ggml(let type): return type.name
        case .packed(let encoding):
            let scales: String
            switch encoding.granularity {
            case .perRow: scales = "row"
            case .perGroup(let size): scales = "g\(size)"
            }
            return "INT\(encoding.bits)-\(scales)\(encoding.symmetric ? "" : "-asym")"
        }
    }
}

/// The element type of a tensor: a plain scalar type or a block-quantized encoding.
public enum DType: Hashable, Sendable, CustomStringConvertible {
    case f32, f16, bf16, f64
    case i8, u8, i16, u16, i32, u32, i64, u64
    case bool
    /// OCP 8-bit floats (`F8_E4M3` is the "fn" variant: no infinities) and the MX exponent-only scale.
    case f8E5M2, f8E4M3, f8E8M0
    /// AMD's "fnuz" 8-bit floats: no negative zero, a single NaN at 0x80.
    case f8E4M3FNUZ, f8E5M2FNUZ
    /// A complex number of two F32.
    case c64
    /// A block-quantized encoding (ggml's or Lathe's packed integers).
    case quantized(QuantizedEncoding)

    /// Every plain scalar type.
    public static let scalarTypes: [DType] = [
        .f32, .f16, .bf16, .f64, .i8, .u8, .i16, .u16, .i32, .u32, .i64, .u64, .bool, .f8E5M2, .f8E4M3, .f8E8M0,
        .f8E4M3FNUZ, .f8E5M2FNUZ, .c64,
    ]

    /// Bytes per element for plain scalar types; nil for quantized encodings (see `byteCount(for:)`).
    public var scalarByteSize: Int? {
        switch self {
        case .f64, .i64, .u64, .c64: return 8
        case .f32, .i32, .u32: return 4
        case .f16, .bf16, .i16, .u16: return 2
        case .i8, .u8, .bool, .f8E5M2, .f8E4M3, .f8E8M0, .f8E4M3FNUZ, .f8E5M2FNUZ: return 1
        case .quantized: return nil
        }
    }

    public var isFloatingPoint: Bool { [.f32, .f16, .bf16, .f64].contains(self) }

    /// Average storage bits per element.
    public var bitsPerWeight: Double {
        if let size = scalarByteSize { return Double(size * 8) }
        guard case .quantized(let encoding) = self else { return 0 }
        return encoding.bitsPerWeight
    }

    /// The exact byte size of a tensor of this type and shape, or a reason it cannot be stored.
    public func byteCount(for shape: Shape) throws(LatheError) -> Int {
        let count = try shape.elementCount()
        if let size = scalarByteSize {
            let (bytes, overflow) = count.multipliedReportingOverflow(by: size)
            if overflow { throw .invalidShape(shape.dimensions, reason: "byte size overflows") }
            return bytes
        }
        guard case .quantized(let encoding) = self else { return 0 }
        return try encoding.byteCount(for: shape)
    }

    public var description: String {
        switch self {
        case .f32: "F32"
        case .f16: "F16"
        case .bf16: "BF16"
        case .f64: "F64"
        case .i8: "I8"
        case .u8: "U8"
        case .i16: "I16"
        case .u16: "U16"
        case .i32: "I32"
        case .u32: "U32"
        case .i64: "I64"
        case .u64: "U64"
        case .bool: "BOOL"
        case .f8E5M2: "F8_E5M2"
        case .f8E4M3: "F8_E4M3"
        case .f8E8M0: "F8_E8M0"
        case .f8E4M3FNUZ: "F8_E4M3FNUZ"
        case .f8E5M2FNUZ: "F8_E5M2FNUZ"
        case .c64: "C64"
        case .quantized(let encoding): encoding.description
        }
    }
}

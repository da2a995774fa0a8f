/// Conversions between Float and the 16-bit float formats, with the rounding ggml and PyTorch use.
public enum HalfPrecision {
    /// IEEE binary16 bits → Float (exact).
    @inline(__always)
    public static func float(fromF16 bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }

    /// Float → IEEE binary16 bits, round to nearest even (overflow becomes ±Inf, NaN stays NaN).
    @inline(__always)
    public static func f16Bits(_ value: Float) -> UInt16 { Float16(value).bitPattern }

    /// bfloat16 bits → Float (exact: the top half of a binary32).
    @inline(__always)
    public static func float(fromBF16 bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    /// Float → bfloat16 bits the way ggml and PyTorch round: NaN is kept quiet, everything else rounds
    /// to nearest even.
    @inline(__always)
    public static func bf16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        if value.isNaN { return UInt16(truncatingIfNeeded: (bits >> 16) | 0x40) }
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }
}

extension UnsafeRawBufferPointer {
    /// A little-endian UInt16 at `offset` (no alignment needed).
    @inline(__always)
    func u16(_ offset: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt16.self)) }

    /// A little-endian UInt32 at `offset`.
    @inline(__always)
    func u32(_ offset: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: offset, as: UInt32.self)) }

    /// The binary16 at `offset`, widened.
    @inline(__always)
    func f16(_ offset: Int) -> Float { HalfPrecision.float(fromF16: u16(offset)) }
}

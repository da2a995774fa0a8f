/// Conversions between Float and the 16-bit float formats, with the rounding ggml and PyTorch use.
public enum HalfPrecision {
    /// Every binary16 value widened, so decoding is one table load (x86-64 has no baseline
    /// instruction for it and the runtime's software conversion is slow).
    private static let f16Table: [Float] = (0...UInt16.max).map { Float(Float16(bitPattern: $0)) }

    /// IEEE binary16 bits → Float (exact).
    @inline(__always)
    public static func float(fromF16 bits: UInt16) -> Float { f16Table.withUnsafeBufferPointer { $0[Int(bits)] } }

    /// Float → IEEE binary16 bits, round to nearest even; overflow becomes ±Inf and every NaN the
    /// quiet NaN 0x7E00. Done on the bit pattern because the runtime's conversion is slow.
    @inline(__always)
    public static func f16Bits(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: (bits >> 16) & 0x8000)
        let magnitude = bits & 0x7FFF_FFFF
        if magnitude >= 0x4780_0000 {
            // 2^16 and above overflows (values from 65520 up round there too, through the normal path).
            return sign | (magnitude > 0x7F80_0000 ? 0x7E00 : 0x7C00)
        }
        if magnitude < 0x3880_0000 {
            // Below 2^-14: a subnormal half. Adding 0.5 lines the mantissa up so the FPU rounds it to
            // nearest even; subtracting 0.5's bits leaves the half's mantissa.
            let half: UInt32 = 0x3F00_0000
            let sum = Float(bitPattern: magnitude) + Float(bitPattern: half)
            return sign | UInt16(truncatingIfNeeded: sum.bitPattern &- half)
        }
        let odd = (magnitude >> 13) & 1
        let rebiased = magnitude &- (112 << 23) &+ 0xFFF &+ odd
        return sign | UInt16(truncatingIfNeeded: rebiased >> 13)
    }

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

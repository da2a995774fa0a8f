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

extension HalfPrecision {
    /// `f16Bits` eight lanes at once: all three cases are computed and the right one selected per
    /// lane with masks built by subtraction, so the loop vectorises. (Swift's integer vector
    /// compares and `replacing(with:where:)` compile to lane-by-lane loops here.)
    @inline(__always)
    public static func f16Bits(_ value: SIMD8<Float>) -> SIMD8<UInt16> {
        let bits = unsafeBitCast(value, to: SIMD8<Int32>.self)
        let sign = (bits &>> 16) & 0x8000
        let magnitude = bits & 0x7FFF_FFFF
        let subnormal =
            unsafeBitCast(
                unsafeBitCast(magnitude, to: SIMD8<Float>.self) + SIMD8(repeating: 0.5), to: SIMD8<Int32>.self)
            &- 0x3F00_0000
        let normal = (magnitude &- (112 << 23) &+ 0xFFF &+ ((magnitude &>> 13) & 1)) &>> 13
        let infinityOrNaN = select(above(magnitude, splat(0x7F80_0000)), splat(0x7E00), splat(0x7C00))
        let finite = select(above(splat(0x3880_0000), magnitude), subnormal, normal)
        let result = select(above(magnitude, splat(0x477F_FFFF)), infinityOrNaN, finite)
        return SIMD8(truncatingIfNeeded: sign | result)
    }

    /// `bf16Bits` eight lanes at once (the low 16 bits of a shift by 16 are the same signed or not).
    @inline(__always)
    public static func bf16Bits(_ value: SIMD8<Float>) -> SIMD8<UInt16> {
        let bits = unsafeBitCast(value, to: SIMD8<Int32>.self)
        let rounded = (bits &+ 0x7FFF &+ ((bits &>> 16) & 1)) &>> 16
        let quiet = (bits &>> 16) | 0x40
        return SIMD8(truncatingIfNeeded: select(above(bits & 0x7FFF_FFFF, splat(0x7F80_0000)), quiet, rounded))
    }

    /// All ones in the lanes where `a > b`, for values in 0..<2^31 (the difference cannot overflow).
    @inline(__always)
    private static func above(_ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> { (b &- a) &>> 31 }

    @inline(__always)
    private static func splat(_ value: Int32) -> SIMD8<Int32> { SIMD8(repeating: value) }

    /// `a` where `mask` is all ones, `b` where it is zero.
    @inline(__always)
    private static func select(_ mask: SIMD8<Int32>, _ a: SIMD8<Int32>, _ b: SIMD8<Int32>) -> SIMD8<Int32> {
        (a & mask) | (b & ~mask)
    }

    /// Every value of `values` as binary16 (`bf16: false`) or bfloat16 bits, little-endian, into `output`.
    static func encode(_ values: UnsafeBufferPointer<Float>, bf16: Bool, into output: UnsafeMutableRawPointer) {
        let count = values.count
        let vectorCount = count / 8 * 8
        let input = UnsafeRawPointer(values.baseAddress!)
        // An installed SIMD encoder (F16C) goes first; the Swift loops below handle what it leaves.
        var i = bf16 ? 0 : EncoderAcceleration.half?(values.baseAddress!, output, count) ?? 0
        while i < vectorCount {
            let v = input.loadUnaligned(fromByteOffset: 4 * i, as: SIMD8<Float>.self)
            let halves = bf16 ? bf16Bits(v) : f16Bits(v)
            output.storeBytes(of: halves, toByteOffset: 2 * i, as: SIMD8<UInt16>.self)
            i += 8
        }
        for j in vectorCount..<count {
            let h = bf16 ? bf16Bits(values[j]) : f16Bits(values[j])
            output.storeBytes(of: h.littleEndian, toByteOffset: 2 * j, as: UInt16.self)
        }
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

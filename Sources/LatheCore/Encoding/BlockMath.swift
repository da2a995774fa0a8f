/// Branch-free building blocks for the 32-element quantizers. They use only float adds, subtracts,
/// compares and bit casts (no libm calls, no trapping float-to-int conversions), so LLVM can
/// vectorise the loops on baseline x86-64 and the results equal the scalar reference bit for bit.
enum BlockMath {
    /// 1.5·2^23: adding and subtracting it rounds a float below 2^22 to the nearest integer, ties to even.
    static let magic: Float = 12_582_912

    /// floor(v) for 0 ≤ v < 2^22, which is C's truncating cast of a non-negative float.
    @inline(__always)
    static func truncateNonNegative(_ v: Float) -> Float {
        let n = (v + magic) - magic
        return n > v ? n - 1 : n
    }

    /// C's roundf (halves away from zero) for |v| < 2^22.
    @inline(__always)
    static func roundHalfAway(_ v: Float) -> Float {
        let a = Float(bitPattern: v.bitPattern & 0x7FFF_FFFF)
        var n = (a + magic) - magic
        if a - n == 0.5 { n += 1 }
        return v < 0 ? -n : n
    }

    /// The low byte of an integral value (two's complement), through the magic number's bit pattern.
    @inline(__always)
    static func byte(_ integral: Float) -> UInt8 {
        UInt8(truncatingIfNeeded: (integral + magic).bitPattern)
    }

    /// `roundHalfAway`, eight lanes at once.
    @inline(__always)
    static func roundHalfAway(_ v: SIMD8<Float>) -> SIMD8<Float> {
        let magic = SIMD8<Float>(repeating: magic)
        let a = unsafeBitCast(unsafeBitCast(v, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: SIMD8<Float>.self)
        var n = (a + magic) - magic
        n.replace(with: n + 1, where: a - n .== 0.5)
        return n.replacing(with: -n, where: v .< 0)
    }

    /// `byte`, eight lanes at once.
    @inline(__always)
    static func bytes(_ integral: SIMD8<Float>) -> SIMD8<UInt8> {
        SIMD8(truncatingIfNeeded: unsafeBitCast(integral + SIMD8(repeating: magic), to: SIMD8<UInt32>.self))
    }

    /// `truncateNonNegative`, sixteen lanes at once.
    @inline(__always)
    static func truncateNonNegative(_ v: SIMD16<Float>) -> SIMD16<Float> {
        let n = (v + SIMD16(repeating: magic)) - SIMD16(repeating: magic)
        return n.replacing(with: n - 1, where: n .> v)
    }

    /// Swift's `min(15, v)` in every lane (15 where `v` is NaN, as the scalar form gives).
    @inline(__always)
    static func atMost15(_ v: SIMD16<Float>) -> SIMD16<Float> {
        SIMD16(repeating: 15).replacing(with: v, where: v .< 15)
    }

    /// Sixteen floats from `x` at `offset`, in one load.
    @inline(__always)
    static func load16(_ x: UnsafeBufferPointer<Float>, _ offset: Int) -> SIMD16<Float> {
        UnsafeRawPointer(x.baseAddress! + offset).loadUnaligned(as: SIMD16<Float>.self)
    }

    /// Eight floats from `x` at `offset`, in one load.
    @inline(__always)
    static func load8(_ x: UnsafeBufferPointer<Float>, _ offset: Int) -> SIMD8<Float> {
        UnsafeRawPointer(x.baseAddress! + offset).loadUnaligned(as: SIMD8<Float>.self)
    }

    /// The low bytes of integral values, as `byte` gives them.
    @inline(__always)
    static func bytes(_ integral: SIMD16<Float>) -> SIMD16<UInt8> {
        SIMD16(truncatingIfNeeded: unsafeBitCast(integral + SIMD16(repeating: magic), to: SIMD16<UInt32>.self))
    }

    /// Stores 4-bit codes as `packCodes` lays them out (elements 0–15 in the low nibbles, 16–31 in
    /// the high ones), for the types that keep no fifth bit; the codes are computed sixteen lanes at
    /// a time with the scalar forms' float operations, since the scalar loop did not vectorise.
    @inline(__always)
    static func storeNibbles(
        low: SIMD16<Float>, high: SIMD16<Float>, into y: UnsafeMutableRawBufferPointer, at offset: Int
    ) {
        y.storeBytes(of: (bytes(low) & 15) | ((bytes(high) & 15) &<< 4), toByteOffset: offset, as: SIMD16<UInt8>.self)
    }

    /// Stores the 4-bit codes of a block: byte `j` holds element `j` in its low nibble and element
    /// `j + 16` in its high nibble. Returns bit 4 of every code as a u32 (bit k for element k), which
    /// the 5-bit types keep.
    @inline(__always)
    @discardableResult
    static func packCodes(
        _ x: UnsafeBufferPointer<Float>, into y: UnsafeMutableRawBufferPointer, at offset: Int, _ code: (Float) -> Float
    ) -> UInt32 {
        var highBits: UInt32 = 0
        for j in 0..<16 {
            let low = byte(code(x[j]))
            let high = byte(code(x[j + 16]))
            y[offset + j] = (low & 15) | ((high & 15) << 4)
            highBits |= UInt32((low >> 4) & 1) << UInt32(j) | UInt32((high >> 4) & 1) << UInt32(j + 16)
        }
        return highBits
    }
}

// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (function names follow ggml's type names: q4_0, q6_K, …)

/// ggml's reference quantizers for the 32-element block types, operation for operation
/// (formats.md §3.3): the scale is inverted from the float `d` before it is rounded to fp16, and
/// `(int8)` casts truncate toward zero. Swift never fuses multiply-adds implicitly, so the float
/// rounding matches the reference.
public enum GGMLQuantize {
    /// The block types this module can produce.
    public static let supportedTypes: [GGMLBlockType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .q4_K, .q6_K]

    /// Encodes `input` (a whole number of blocks) into `output` (`count / blockSize · bytesPerBlock` bytes).
    public static func blocks(
        _ type: GGMLBlockType, from input: UnsafeBufferPointer<Float>, into output: UnsafeMutableRawBufferPointer
    ) {
        let blockCount = input.count / type.blockSize
        precondition(input.count % type.blockSize == 0, "input is not a whole number of \(type.name) blocks")
        precondition(output.count >= blockCount * type.bytesPerBlock, "output too small")
        guard blockCount > 0 else { return }
        // An installed SIMD quantizer goes first; it checks each block as it reads it and stops
        // before one it leaves to the portable path (infinities, NaNs, a scale too small to invert).
        var kernel = EncoderAcceleration.blocks
        var b = 0
        if let body = kernel {
            let done = body(type, input.baseAddress!, blockCount, output.baseAddress!)
            if done < 0 { kernel = nil } else { b = done }
        }
        guard b < blockCount else { return }
        // Without one, a vectorised scan for NaNs over the whole input spares the common case a
        // check per block (a NaN's magnitude bits exceed infinity's); with one, the portable path
        // sees only the blocks it left, and checks each.
        let clean = kernel == nil && largestMagnitudeBits(input) <= 0x7F80_0000
        while b < blockCount {
            let block = UnsafeBufferPointer(rebasing: input[(b * type.blockSize)..<((b + 1) * type.blockSize)])
            let y = UnsafeMutableRawBufferPointer(
                rebasing: output[(b * type.bytesPerBlock)..<((b + 1) * type.bytesPerBlock)])
            if clean {
                quantizeBlock(type, block, y)
            } else {
                withoutNaN(block) { x in quantizeBlock(type, x, y) }
            }
            b += 1
            if let kernel, b < blockCount {
                b += kernel(
                    type, input.baseAddress! + b * type.blockSize, blockCount - b,
                    output.baseAddress! + b * type.bytesPerBlock)
            }
        }
    }

    /// The largest magnitude's bit pattern. For non-negative floats the bit patterns order like the
    /// values, and an integer maximum vectorises where a float one (with its NaN rules) does not.
    @inline(__always)
    private static func largestMagnitudeBits(_ x: UnsafeBufferPointer<Float>) -> UInt32 {
        var largest: UInt32 = 0
        for v in x { largest = max(largest, v.bitPattern & 0x7FFF_FFFF) }
        return largest
    }

    @inline(__always)
    private static func quantizeBlock(
        _ type: GGMLBlockType, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer
    ) {
        switch type {
        case .q4_0: q4_0(x, y)
        case .q4_1: q4_1(x, y)
        case .q5_0: q5_0(x, y)
        case .q5_1: q5_1(x, y)
        case .q8_0: q8(x, y, withSum: false)
        case .q8_1: q8(x, y, withSum: true)
        case .q4_K: KQuantize.q4_K(x, y)
        case .q6_K: KQuantize.q6_K(x, y)
        case .q2_K, .q3_K, .q5_K, .q8_K:
            preconditionFailure("\(type.name) quantization is not supported; check supportedTypes first")
        }
    }

    /// The element with the largest magnitude, keeping its sign (the first one on ties): the maximum
    /// magnitude on the bit patterns, then its first holder.
    private static func signedAbsMax(_ x: UnsafeBufferPointer<Float>) -> Float {
        let amaxBits = largestMagnitudeBits(x)
        guard amaxBits != 0 else { return 0 }
        for v in x where v.bitPattern & 0x7FFF_FFFF == amaxBits { return v }
        return 0
    }

    private static func minMax(_ x: UnsafeBufferPointer<Float>) -> (Float, Float) {
        var lo = Float.greatestFiniteMagnitude
        var hi = -Float.greatestFiniteMagnitude
        for v in x {
            if v < lo { lo = v }
            if v > hi { hi = v }
        }
        return (lo, hi)
    }

    /// The block with NaNs replaced by zero: ggml's result for NaN input is undefined, and Lathe
    /// must not trap converting it to an integer.
    static func withoutNaN<R>(_ x: UnsafeBufferPointer<Float>, _ body: (UnsafeBufferPointer<Float>) -> R) -> R {
        guard x.contains(where: { $0.isNaN }) else { return body(x) }
        let cleaned = x.map { $0.isNaN ? 0 : $0 }
        return cleaned.withUnsafeBufferPointer(body)
    }

    @inline(__always)
    static func store(_ bits: UInt16, _ y: UnsafeMutableRawBufferPointer, at offset: Int) {
        y.storeBytes(of: bits.littleEndian, toByteOffset: offset, as: UInt16.self)
    }

    private static func q4_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        let d = signedAbsMax(x) / -8
        let id: Float = d != 0 ? 1 / d : 0
        store(HalfPrecision.f16Bits(d), y, at: 0)
        func code(_ v: SIMD16<Float>) -> SIMD16<Float> {
            BlockMath.atMost15(BlockMath.truncateNonNegative(v * id + 8.5))
        }
        BlockMath.storeNibbles(low: code(BlockMath.load16(x, 0)), high: code(BlockMath.load16(x, 16)), into: y, at: 2)
    }

    private static func q4_1(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        let (lo, hi) = minMax(x)
        let d = (hi - lo) / 15
        let id: Float = d != 0 ? 1 / d : 0
        store(HalfPrecision.f16Bits(d), y, at: 0)
        store(HalfPrecision.f16Bits(lo), y, at: 2)
        func code(_ v: SIMD16<Float>) -> SIMD16<Float> {
            BlockMath.atMost15(BlockMath.truncateNonNegative((v - SIMD16(repeating: lo)) * id + 0.5))
        }
        BlockMath.storeNibbles(low: code(BlockMath.load16(x, 0)), high: code(BlockMath.load16(x, 16)), into: y, at: 4)
    }

    private static func q5_0(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        let d = signedAbsMax(x) / -16
        let id: Float = d != 0 ? 1 / d : 0
        store(HalfPrecision.f16Bits(d), y, at: 0)
        let qh = BlockMath.packCodes(x, into: y, at: 6) { min(31, BlockMath.truncateNonNegative($0 * id + 16.5)) }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 2, as: UInt32.self)
    }

    private static func q5_1(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        let (lo, hi) = minMax(x)
        let d = (hi - lo) / 31
        let id: Float = d != 0 ? 1 / d : 0
        store(HalfPrecision.f16Bits(d), y, at: 0)
        store(HalfPrecision.f16Bits(lo), y, at: 2)
        // The reference does not clamp here; the values cannot exceed 31.
        let qh = BlockMath.packCodes(x, into: y, at: 8) { BlockMath.truncateNonNegative(($0 - lo) * id + 0.5) }
        y.storeBytes(of: qh.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    private static func q8(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer, withSum: Bool) {
        let d = Float(bitPattern: largestMagnitudeBits(x)) / 127
        let id: Float = d != 0 ? 1 / d : 0
        store(HalfPrecision.f16Bits(d), y, at: 0)
        let dataOffset = withSum ? 4 : 2
        // Eight lanes at a time (the scalar loop did not vectorise, and was most of a Q8_0 conversion).
        for part in 0..<4 {
            let codes = BlockMath.bytes(BlockMath.roundHalfAway(BlockMath.load8(x, 8 * part) * id))
            y.storeBytes(of: codes, toByteOffset: dataOffset + 8 * part, as: SIMD8<UInt8>.self)
        }
        if withSum {
            var sum = 0
            for k in 0..<32 { sum += Int(Int8(bitPattern: y[dataOffset + k])) }
            store(HalfPrecision.f16Bits(Float(sum) * d), y, at: 2)
        }
    }
}

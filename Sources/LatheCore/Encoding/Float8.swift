/// Decoding tables for the 8-bit float formats safetensors carries (formats.md §1.2).
enum Float8 {
    static let e5m2 = (0..<256).map { decode(UInt8($0), exponentBits: 5, bias: 15, ieeeSpecials: true) }
    static let e4m3fn = (0..<256).map { bits -> Float in
        // No infinities; only S.1111.111 is NaN.
        (bits & 0x7F) == 0x7F ? .nan : decode(UInt8(bits), exponentBits: 4, bias: 7, ieeeSpecials: false)
    }
    static let e8m0 = (0..<256).map { bits -> Float in
        bits == 0xFF ? .nan : Float(sign: .plus, exponent: bits - 127, significand: 1)
    }
    static let e4m3fnuz = (0..<256).map { bits -> Float in
        bits == 0x80 ? .nan : decode(UInt8(bits), exponentBits: 4, bias: 8, ieeeSpecials: false)
    }
    static let e5m2fnuz = (0..<256).map { bits -> Float in
        bits == 0x80 ? .nan : decode(UInt8(bits), exponentBits: 5, bias: 16, ieeeSpecials: false)
    }

    static func table(_ dtype: DType) -> [Float] {
        switch dtype {
        case .f8E5M2: e5m2
        case .f8E4M3: e4m3fn
        case .f8E8M0: e8m0
        case .f8E4M3FNUZ: e4m3fnuz
        default: e5m2fnuz
        }
    }

    /// Sign, `exponentBits` of exponent, the rest mantissa; subnormals when the exponent is zero.
    private static func decode(_ bits: UInt8, exponentBits: Int, bias: Int, ieeeSpecials: Bool) -> Float {
        let mantissaBits = 7 - exponentBits
        let sign: Float = bits & 0x80 != 0 ? -1 : 1
        let exponent = Int(bits >> UInt8(mantissaBits)) & ((1 << exponentBits) - 1)
        let mantissa = Int(bits) & ((1 << mantissaBits) - 1)
        if ieeeSpecials, exponent == (1 << exponentBits) - 1 { return mantissa == 0 ? sign * .infinity : .nan }
        let scale = Float(mantissa) / Float(1 << mantissaBits)
        if exponent == 0 { return sign * scale * Float(sign: .plus, exponent: 1 - bias, significand: 1) }
        return sign * (1 + scale) * Float(sign: .plus, exponent: exponent - bias, significand: 1)
    }
}

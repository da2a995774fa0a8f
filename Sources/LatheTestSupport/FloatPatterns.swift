/// Float inputs that reach every case of a float encoder.
public enum FloatPatterns {
    /// Every 4093rd bit pattern (all exponents, both signs, NaNs) plus the F16 case boundaries
    /// (subnormal, overflow, rounding edges), in a count that leaves a tail of less than eight.
    public static let halfPrecisionEdges: [Float] = {
        var patterns = Array(stride(from: UInt32(0), to: UInt32.max - 4093, by: 4093))
        patterns += [0x3880_0000, 0x387F_FFFF, 0x4780_0000, 0x477F_EFFF, 0x477F_F000, 0x7F80_0000, 0x7F80_0001]
        patterns += patterns.map { $0 | 0x8000_0000 } + [0x3300_0000, 0x3300_0001]
        return patterns.map { Float(bitPattern: $0) }
    }()
}

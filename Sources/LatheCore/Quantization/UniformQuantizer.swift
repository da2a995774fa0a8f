/// Quantize-then-dequantize ("fake quantization") on the integer grids the rotation methods use,
/// rounding half to even as PyTorch's `round` does (a plain `.rounded()` rounds half away from zero
/// and changes results).
public enum UniformQuantizer {
    /// Asymmetric quantization of `count` values to `bits` bits: the range is [min, max] (widened
    /// to contain 0 when `includeZero`), shrunk by `clip`, cut into 2^bits − 1 steps with an integer
    /// zero point. A constant group whose range cannot hold a step is left as it is (exact).
    public static func asymmetric(
        _ x: UnsafeMutablePointer<Float>, count: Int, bits: Int, includeZero: Bool, clip: Float = 1
    ) {
        guard count > 0 else { return }
        var low = x[0]
        var high = x[0]
        for i in 1..<count {
            low = min(low, x[i])
            high = max(high, x[i])
        }
        if includeZero {
            low = min(low, 0)
            high = max(high, 0)
        }
        low *= clip
        high *= clip
        if low == 0 && high == 0 {
            low = -1
            high = 1
        }
        let levels = Float((1 << bits) - 1)
        let scale = (high - low) / levels
        guard scale > 0, scale.isFinite else { return }
        let zero = (-low / scale).rounded(.toNearestOrEven)
        for i in 0..<count {
            let code = min(max((x[i] / scale).rounded(.toNearestOrEven) + zero, 0), levels)
            x[i] = scale * (code - zero)
        }
    }

    /// Symmetric quantization with a given scale onto the levels −2^(bits−1) … 2^(bits−1) − 1.
    public static func symmetric(_ x: UnsafeMutablePointer<Float>, count: Int, bits: Int, scale: Float) {
        guard scale > 0 else { return }
        let (lowest, highest) = symmetricRange(bits: bits)
        for i in 0..<count {
            x[i] = scale * min(max((x[i] / scale).rounded(.toNearestOrEven), lowest), highest)
        }
    }

    /// Symmetric quantization on the grid whose top level is the largest magnitude (no clipping),
    /// as the reference's per-tensor or per-row weight quantizer without a clip search.
    public static func symmetricAbsMax(_ x: UnsafeMutablePointer<Float>, count: Int, bits: Int) {
        var largest: Float = 0
        for i in 0..<count { largest = max(largest, abs(x[i])) }
        symmetric(x, count: count, bits: bits, scale: symmetricScale(maxMagnitude: largest, bits: bits))
    }

    /// The integer code of `value` on the symmetric grid of `scale`.
    public static func symmetricCode(_ value: Float, bits: Int, scale: Float) -> Float {
        let (lowest, highest) = symmetricRange(bits: bits)
        return min(max((value / scale).rounded(.toNearestOrEven), lowest), highest)
    }

    /// The code of `value` on the asymmetric grid of `scale` and integer `zero`, minus the zero
    /// point (so the dequantized value is the result times `scale`): round(v/s) + z clamped to
    /// 0 … 2^bits − 1, as GPTQ's asymmetric quantizer.
    public static func asymmetricCode(_ value: Float, bits: Int, scale: Float, zero: Float) -> Float {
        min(max((value / scale).rounded(.toNearestOrEven) + zero, 0), Float((1 << bits) - 1)) - zero
    }

    /// The symmetric scale that maps the largest magnitude to the top level: max|x| / (2^(bits−1) − 1),
    /// at least 1e-5 / that (as the reference clamps the range to ≥ 1e-5).
    public static func symmetricScale(maxMagnitude: Float, bits: Int) -> Float {
        max(maxMagnitude, 1e-5) / Float((1 << (bits - 1)) - 1)
    }

    static func symmetricRange(bits: Int) -> (Float, Float) {
        (-Float(1 << (bits - 1)), Float((1 << (bits - 1)) - 1))
    }
}

// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (function names follow ggml's type names: q4_K, q6_K)

/// ggml's reference quantizers for Q4_K and Q6_K without an importance matrix
/// (`quantize_row_q4_K_ref`, `quantize_row_q6_K_ref`), operation for operation: every sum runs in
/// index order, products keep ggml's association, nothing is fused, and the final codes are computed
/// from the fp16-rounded super-block scales. These are the bytes llama-quantize writes on x86-64.
enum KQuantize {
    /// ggml's `nearest_int`: round half to even through the 1.5·2^23 trick, wrapping (not trapping)
    /// outside ±2^22 as the C code does.
    @inline(__always)
    static func nearestInt(_ f: Float) -> Int {
        let v = f + 12_582_912
        return Int(Int32(bitPattern: v.bitPattern & 0x007F_FFFF)) - 0x0040_0000
    }

    /// The group threshold below which a block counts as zero.
    static let groupMaxEps: Float = 1e-15

    // MARK: - Q4_K

    static func q4_K(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        var codes = [UInt8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 8)
        var mins = [Float](repeating: 0, count: 8)
        var weights = [Float](repeating: 0, count: 32)
        var maxScale: Float = 0
        var maxMin: Float = 0
        for j in 0..<8 {
            let group = UnsafeBufferPointer(rebasing: x[(32 * j)..<(32 * j + 32)])
            var sumX2: Float = 0
            for v in group { sumX2 += v * v }
            let average = (sumX2 / 32).squareRoot()
            for l in 0..<32 { weights[l] = average + abs(group[l]) }
            let (scale, offset) = codes.withUnsafeMutableBufferPointer { all in
                scaleMinFit(group, weights, codes: UnsafeMutableBufferPointer(rebasing: all[(32 * j)..<(32 * j + 32)]))
            }
            scales[j] = scale
            mins[j] = offset
            if scale > maxScale { maxScale = scale }
            if offset > maxMin { maxMin = offset }
        }
        let inverseScale: Float = maxScale > 0 ? 63 / maxScale : 0
        let inverseMin: Float = maxMin > 0 ? 63 / maxMin : 0
        var packed = [UInt8](repeating: 0, count: 12)
        for j in 0..<8 {
            // C assigns the int to uint8_t (wrapping), then clamps to 63.
            let ls = min(63, UInt8(truncatingIfNeeded: nearestInt(inverseScale * scales[j])))
            let lm = min(63, UInt8(truncatingIfNeeded: nearestInt(inverseMin * mins[j])))
            if j < 4 {
                packed[j] = ls
                packed[j + 4] = lm
            } else {
                packed[j + 4] = (ls & 0x0F) | ((lm & 0x0F) << 4)
                packed[j - 4] |= (ls >> 4) << 6
                packed[j] |= (lm >> 4) << 6
            }
        }
        let dBits = HalfPrecision.f16Bits(maxScale / 63)
        let dminBits = HalfPrecision.f16Bits(maxMin / 63)
        let d16 = HalfPrecision.float(fromF16: dBits)
        let dmin16 = HalfPrecision.float(fromF16: dminBits)
        packed.withUnsafeBytes { scaleBytes in
            for j in 0..<8 {
                let (sc, m) = GGMLDequantize.scaleMinK4(j, scaleBytes, offset: 0)
                let d = d16 * Float(sc)
                // A zero scale keeps the codes of the fit, exactly as ggml does.
                if d == 0 { continue }
                let dm = dmin16 * Float(m)
                for i in 0..<32 {
                    codes[32 * j + i] = UInt8(max(0, min(15, nearestInt((x[32 * j + i] + dm) / d))))
                }
            }
        }
        GGMLQuantize.store(dBits, y, at: 0)
        GGMLQuantize.store(dminBits, y, at: 2)
        for i in 0..<12 { y[4 + i] = packed[i] }
        for c in 0..<4 {
            for l in 0..<32 { y[16 + 32 * c + l] = codes[64 * c + l] | (codes[64 * c + 32 + l] << 4) }
        }
    }

    /// ggml's `make_qkx2_quants(32, 15, x, w, −1, 0.1, 20, false)`: a weighted fit of scale and offset
    /// with 4-bit codes, trying 21 candidate scales. Returns the scale and the (non-negative) offset.
    private static func scaleMinFit(
        _ x: UnsafeBufferPointer<Float>, _ w: [Float], codes: UnsafeMutableBufferPointer<UInt8>
    ) -> (scale: Float, offset: Float) {
        let n = 32
        let nmax = 15
        var lo = x[0]
        var hi = x[0]
        var sumW = w[0]
        var sumX = sumW * x[0]
        for i in 1..<n {
            if x[i] < lo { lo = x[i] }
            if x[i] > hi { hi = x[i] }
            sumW += w[i]
            sumX += w[i] * x[i]
        }
        if lo > 0 { lo = 0 }
        if hi == lo {
            for i in 0..<n { codes[i] = 0 }
            return (0, -lo)
        }
        var iscale = Float(nmax) / (hi - lo)
        var scale = 1 / iscale
        var bestError: Float = 0
        for i in 0..<n {
            let l = max(0, min(nmax, nearestInt(iscale * (x[i] - lo))))
            codes[i] = UInt8(l)
            let diff = (scale * Float(l) + lo) - x[i]
            bestError += w[i] * (diff * diff)
        }
        var trial = [UInt8](repeating: 0, count: n)
        for step in 0...20 {
            iscale = ((-1 + 0.1 * Float(step)) + Float(nmax)) / (hi - lo)
            var sumL: Float = 0
            var sumL2: Float = 0
            var sumXL: Float = 0
            for i in 0..<n {
                let l = max(0, min(nmax, nearestInt(iscale * (x[i] - lo))))
                trial[i] = UInt8(l)
                let wl = w[i] * Float(l)
                sumL += wl
                sumL2 += wl * Float(l)
                sumXL += wl * x[i]
            }
            let determinant = sumW * sumL2 - sumL * sumL
            guard determinant > 0 else { continue }
            var thisScale = (sumW * sumXL - sumX * sumL) / determinant
            var thisMin = (sumL2 * sumX - sumL * sumXL) / determinant
            if thisMin > 0 {
                thisMin = 0
                thisScale = sumXL / sumL2
            }
            var error: Float = 0
            for i in 0..<n {
                let diff = (thisScale * Float(trial[i]) + thisMin) - x[i]
                error += w[i] * (diff * diff)
            }
            if error < bestError {
                for i in 0..<n { codes[i] = trial[i] }
                bestError = error
                scale = thisScale
                // Later trials start from the fitted offset, as in ggml (the variable is reused).
                lo = thisMin
            }
        }
        return (scale, -lo)
    }

    // MARK: - Q6_K

    static func q6_K(_ x: UnsafeBufferPointer<Float>, _ y: UnsafeMutableRawBufferPointer) {
        var codes = [Int8](repeating: 0, count: 256)
        var scales = [Float](repeating: 0, count: 16)
        var maxScale: Float = 0
        var maxAbsScale: Float = 0
        for ib in 0..<16 {
            let scale = codes.withUnsafeMutableBufferPointer { all in
                symmetricFit(
                    UnsafeBufferPointer(rebasing: x[(16 * ib)..<(16 * ib + 16)]),
                    codes: UnsafeMutableBufferPointer(rebasing: all[(16 * ib)..<(16 * ib + 16)]))
            }
            scales[ib] = scale
            if abs(scale) > maxAbsScale {
                maxAbsScale = abs(scale)
                maxScale = scale
            }
        }
        guard maxAbsScale >= groupMaxEps else {
            for i in 0..<210 { y[i] = 0 }
            return
        }
        let iscale = -128 / maxScale
        let dBits = HalfPrecision.f16Bits(1 / iscale)
        let d16 = HalfPrecision.float(fromF16: dBits)
        var subScales = [Int8](repeating: 0, count: 16)
        for ib in 0..<16 { subScales[ib] = Int8(truncatingIfNeeded: min(127, nearestInt(iscale * scales[ib]))) }
        for j in 0..<16 {
            let d = d16 * Float(subScales[j])
            // A zero scale keeps the codes of the fit, exactly as ggml does.
            if d == 0 { continue }
            for i in 0..<16 {
                codes[16 * j + i] = Int8(max(-32, min(31, nearestInt(x[16 * j + i] / d))) + 32)
            }
        }
        for h in 0..<2 {
            let base = 128 * h
            for l in 0..<32 {
                let q1 = UInt8(codes[base + l])
                let q2 = UInt8(codes[base + l + 32])
                let q3 = UInt8(codes[base + l + 64])
                let q4 = UInt8(codes[base + l + 96])
                y[64 * h + l] = (q1 & 0xF) | ((q3 & 0xF) << 4)
                y[64 * h + l + 32] = (q2 & 0xF) | ((q4 & 0xF) << 4)
                y[128 + 32 * h + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6)
            }
        }
        for ib in 0..<16 { y[192 + ib] = UInt8(bitPattern: subScales[ib]) }
        GGMLQuantize.store(dBits, y, at: 208)
    }

    /// ggml's `make_qx_quants(16, 32, x, rmse_type 1)`: a symmetric scale for 6-bit codes weighted by
    /// x², trying 18 scales around −32/max. Codes are stored offset by 32 (0…63).
    private static func symmetricFit(_ x: UnsafeBufferPointer<Float>, codes: UnsafeMutableBufferPointer<Int8>) -> Float
    {
        let nmax = 32
        var maximum: Float = 0
        var amax: Float = 0
        for v in x where abs(v) > amax {
            amax = abs(v)
            maximum = v
        }
        if amax < groupMaxEps {
            for i in codes.indices { codes[i] = 0 }
            return 0
        }
        func sums(_ iscale: Float) -> (Float, Float) {
            var sumLX: Float = 0
            var sumL2: Float = 0
            for v in x {
                let l = Float(max(-nmax, min(nmax - 1, nearestInt(iscale * v))))
                let w = v * v
                sumLX += (w * v) * l
                sumL2 += (w * l) * l
            }
            return (sumLX, sumL2)
        }
        func assign(_ iscale: Float) {
            for i in codes.indices { codes[i] = Int8(nmax + max(-nmax, min(nmax - 1, nearestInt(iscale * x[i])))) }
        }
        var iscale = Float(-nmax) / maximum
        assign(iscale)
        var (sumLX, sumL2) = sums(iscale)
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0
        var best = scale * sumLX
        for step in -9...9 where step != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(step)) / maximum
            (sumLX, sumL2) = sums(iscale)
            if sumL2 > 0, sumLX * sumLX > best * sumL2 {
                assign(iscale)
                scale = sumLX / sumL2
                best = scale * sumLX
            }
        }
        return scale
    }
}

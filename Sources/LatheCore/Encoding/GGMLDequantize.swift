// swift-format-ignore-file: AlwaysUseLowerCamelCase
// (function names follow ggml's type names: q4_0, q6_K, …)

/// Dequantization of every ggml block type, following the formulas of formats.md §3 (element order,
/// scale packing and the order of float operations match ggml's reference code).
public enum GGMLDequantize {
    /// Decodes `blockCount` consecutive blocks of `type` from `source` into `output`
    /// (`blockCount · type.blockSize` floats).
    public static func blocks(
        _ type: GGMLBlockType, from source: UnsafeRawBufferPointer, into output: UnsafeMutableBufferPointer<Float>
    ) {
        let blockCount = source.count / type.bytesPerBlock
        precondition(
            output.count >= blockCount * type.blockSize, "output too small for \(blockCount) \(type.name) blocks")
        for b in 0..<blockCount {
            let block = UnsafeRawBufferPointer(
                rebasing: source[(b * type.bytesPerBlock)..<((b + 1) * type.bytesPerBlock)])
            let y = UnsafeMutableBufferPointer(rebasing: output[(b * type.blockSize)..<((b + 1) * type.blockSize)])
            switch type {
            case .q4_0: q4_0(block, y)
            case .q4_1: q4_1(block, y)
            case .q5_0: q5_0(block, y)
            case .q5_1: q5_1(block, y)
            case .q8_0, .q8_1: q8(block, y, dataOffset: type == .q8_0 ? 2 : 4)
            case .q2_K: q2_K(block, y)
            case .q3_K: q3_K(block, y)
            case .q4_K: q45_K(block, y, highBits: false)
            case .q5_K: q45_K(block, y, highBits: true)
            case .q6_K: q6_K(block, y)
            case .q8_K: q8_K(block, y)
            }
        }
    }

    // MARK: - 32-element blocks

    private static func q4_0(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(0)
        for j in 0..<16 {
            let q = x[2 + j]
            y[j] = Float(Int(q & 15) - 8) * d
            y[j + 16] = Float(Int(q >> 4) - 8) * d
        }
    }

    private static func q4_1(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(0)
        let m = x.f16(2)
        for j in 0..<16 {
            let q = x[4 + j]
            y[j] = Float(q & 15) * d + m
            y[j + 16] = Float(q >> 4) * d + m
        }
    }

    private static func q5_0(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(0)
        let qh = x.u32(2)
        for j in 0..<16 {
            let q = x[6 + j]
            let low = Int(q & 15) | Int((qh >> UInt32(j)) & 1) << 4
            let high = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(low - 16) * d
            y[j + 16] = Float(high - 16) * d
        }
    }

    private static func q5_1(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(0)
        let m = x.f16(2)
        let qh = x.u32(4)
        for j in 0..<16 {
            let q = x[8 + j]
            let low = Int(q & 15) | Int((qh >> UInt32(j)) & 1) << 4
            let high = Int(q >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = Float(low) * d + m
            y[j + 16] = Float(high) * d + m
        }
    }

    private static func q8(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>, dataOffset: Int) {
        let d = x.f16(0)
        for k in 0..<32 { y[k] = Float(Int8(bitPattern: x[dataOffset + k])) * d }
    }

    // MARK: - K-quants (256-element super-blocks)

    private static func q2_K(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(80)
        let dmin = x.f16(82)
        for h in 0..<2 {
            for s in 0..<4 {
                for t in 0..<2 {
                    let sc = x[8 * h + 2 * s + t]
                    let dl = d * Float(sc & 15)
                    let ml = dmin * Float(sc >> 4)
                    for l in 0..<16 {
                        let q = (x[16 + 32 * h + 16 * t + l] >> UInt8(2 * s)) & 3
                        y[128 * h + 32 * s + 16 * t + l] = dl * Float(q) - ml
                    }
                }
            }
        }
    }

    private static func q3_K(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(108)
        for h in 0..<2 {
            for s in 0..<4 {
                for t in 0..<2 {
                    let j = 8 * h + 2 * s + t
                    let low4 = j < 8 ? Int(x[96 + j] & 15) : Int(x[96 + j - 8] >> 4)
                    let high2 = Int((x[96 + 8 + j % 4] >> UInt8(2 * (j / 4))) & 3)
                    let dl = d * Float((low4 | high2 << 4) - 32)
                    for l in 0..<16 {
                        let lowBits = Int((x[32 + 32 * h + 16 * t + l] >> UInt8(2 * s)) & 3)
                        let highBit = (x[16 * t + l] >> UInt8(4 * h + s)) & 1
                        y[128 * h + 32 * s + 16 * t + l] = dl * Float(lowBits - (highBit == 0 ? 4 : 0))
                    }
                }
            }
        }
    }

    /// The 6-bit scale and min of sub-block `j` from Q4_K/Q5_K's 12 packed bytes at `offset`.
    static func scaleMinK4(_ j: Int, _ x: UnsafeRawBufferPointer, offset: Int) -> (scale: UInt8, min: UInt8) {
        if j < 4 { return (x[offset + j] & 63, x[offset + j + 4] & 63) }
        let scale = (x[offset + j + 4] & 15) | ((x[offset + j - 4] >> 6) << 4)
        let min = (x[offset + j + 4] >> 4) | ((x[offset + j] >> 6) << 4)
        return (scale, min)
    }

    private static func q45_K(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>, highBits: Bool) {
        let d = x.f16(0)
        let dmin = x.f16(2)
        let qsOffset = highBits ? 48 : 16
        for c in 0..<4 {
            let (sc0, m0) = scaleMinK4(2 * c, x, offset: 4)
            let (sc1, m1) = scaleMinK4(2 * c + 1, x, offset: 4)
            let d0 = d * Float(sc0)
            let dm0 = dmin * Float(m0)
            let d1 = d * Float(sc1)
            let dm1 = dmin * Float(m1)
            for l in 0..<32 {
                let q = x[qsOffset + 32 * c + l]
                var low = Int(q & 15)
                var high = Int(q >> 4)
                if highBits {
                    let qh = x[16 + l]
                    low += Int((qh >> UInt8(2 * c)) & 1) << 4
                    high += Int((qh >> UInt8(2 * c + 1)) & 1) << 4
                }
                y[64 * c + l] = d0 * Float(low) - dm0
                y[64 * c + 32 + l] = d1 * Float(high) - dm1
            }
        }
    }

    private static func q6_K(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = x.f16(208)
        for h in 0..<2 {
            let ql = 64 * h
            let qh = 128 + 32 * h
            let sc = 192 + 8 * h
            for l in 0..<32 {
                let i = l / 16
                let hb = x[qh + l]
                let q1 = Int((x[ql + l] & 15) | ((hb & 3) << 4)) - 32
                let q2 = Int((x[ql + l + 32] & 15) | (((hb >> 2) & 3) << 4)) - 32
                let q3 = Int((x[ql + l] >> 4) | (((hb >> 4) & 3) << 4)) - 32
                let q4 = Int((x[ql + l + 32] >> 4) | (((hb >> 6) & 3) << 4)) - 32
                y[128 * h + l] = d * Float(Int8(bitPattern: x[sc + i])) * Float(q1)
                y[128 * h + l + 32] = d * Float(Int8(bitPattern: x[sc + i + 2])) * Float(q2)
                y[128 * h + l + 64] = d * Float(Int8(bitPattern: x[sc + i + 4])) * Float(q3)
                y[128 * h + l + 96] = d * Float(Int8(bitPattern: x[sc + i + 6])) * Float(q4)
            }
        }
    }

    private static func q8_K(_ x: UnsafeRawBufferPointer, _ y: UnsafeMutableBufferPointer<Float>) {
        let d = Float(bitPattern: x.u32(0))
        for k in 0..<256 { y[k] = d * Float(Int8(bitPattern: x[4 + k])) }
    }
}

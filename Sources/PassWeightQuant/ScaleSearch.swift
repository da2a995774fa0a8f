import Foundation
import LatheCore

/// Per-row scales for column groups of a weight, found by the reference's MSE clip search: shrink
/// the range by p = 1 − i/100 (i < 80) and keep the grid with the least Σ|Q(w) − w|^2.4. The search
/// walks every fourth step, then the neighbours of the best one: a third of the reference's work.
/// The error is nearly but not exactly unimodal in p, so a few rows (about 1 % of Gaussian rows at
/// 4 bit) get a slightly worse clip than the exhaustive search would give them.
struct ScaleSearch {
    static let steps = 80
    static let exponent: Float = 2.4

    var clipSearch: Bool

    /// The scale of `values` (one row's group) on the `bits`-bit symmetric grid.
    func scale(_ values: UnsafeBufferPointer<Float>, bits: Int) -> Float {
        var largest: Float = 0
        for v in values { largest = max(largest, abs(v)) }
        let top = Float((1 << (bits - 1)) - 1)
        guard clipSearch, largest > 0 else { return UniformQuantizer.symmetricScale(maxMagnitude: largest, bits: bits) }
        return bestGrid(values) { step in
            let scale = max(largest * (1 - Float(step) / 100), 1e-5) / top
            return (scale, { v in UniformQuantizer.symmetricCode(v, bits: bits, scale: scale) * scale })
        }
    }

    /// The scale and integer zero point of `values` on the `bits`-bit asymmetric grid: the range
    /// [min(x, 0), max(x, 0)] shrunk by the same search, as GPTQ's asymmetric `find_params`.
    func asymmetric(_ values: UnsafeBufferPointer<Float>, bits: Int) -> (scale: Float, zero: Float) {
        var low: Float = 0
        var high: Float = 0
        for v in values {
            low = min(low, v)
            high = max(high, v)
        }
        let top = Float((1 << bits) - 1)
        func grid(_ step: Int) -> (scale: Float, zero: Float) {
            let p = 1 - Float(step) / 100
            var (a, b) = (p * low, p * high)
            if a == 0 && b == 0 { (a, b) = (-1, 1) }
            let scale = (b - a) / top
            return (scale, (-a / scale).rounded(.toNearestOrEven))
        }
        guard clipSearch, low < high else { return grid(0) }
        return bestGrid(values) { step in
            let g = grid(step)
            return (g, { v in UniformQuantizer.asymmetricCode(v, bits: bits, scale: g.scale, zero: g.zero) * g.scale })
        }
    }

    /// The grid of the search step whose rounding (`candidate(step)`: the grid and its
    /// quantize-dequantize) loses the least on `values`.
    private func bestGrid<Grid>(
        _ values: UnsafeBufferPointer<Float>, _ candidate: (Int) -> (grid: Grid, rounded: (Float) -> Float)
    ) -> Grid {
        func error(_ step: Int) -> (Float, Grid) {
            let (grid, rounded) = candidate(step)
            var total: Float = 0
            for v in values {
                let e = abs(rounded(v) - v)
                if e > 0 { total += pow(e, Self.exponent) }
            }
            return (total, grid)
        }
        var best = (error: Float.infinity, grid: candidate(0).grid, step: 0)
        for step in stride(from: 0, to: Self.steps, by: 4) {
            let (e, g) = error(step)
            if e < best.error { best = (e, g, step) }
        }
        for step in max(0, best.step - 3)...min(Self.steps - 1, best.step + 3) where step % 4 != 0 {
            let (e, g) = error(step)
            if e < best.error { best = (e, g, step) }
        }
        return best.grid
    }
}

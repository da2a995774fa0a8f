import LatheCore
import LinearAlgebra

/// A weight matrix's quantization grid: for each input column, its bit width and scale group;
/// per output row, one scale per group.
struct ColumnGrid {
    var bits: [Int]
    var group: [Int]
    var groupCount: Int
    /// `rows × groupCount`.
    var scales: [Float]
    /// Integer zero points (`rows × groupCount`) for an asymmetric grid, or empty for a symmetric one.
    var zeros: [Float] = []

    func scale(row: Int, column: Int) -> Float { scales[row * groupCount + group[column]] }

    /// `value` rounded onto the grid of its row and column, dequantized.
    func quantized(_ value: Float, row: Int, column: Int) -> Float {
        let slot = row * groupCount + group[column]
        let s = scales[slot]
        guard !zeros.isEmpty else { return UniformQuantizer.symmetricCode(value, bits: bits[column], scale: s) * s }
        return UniformQuantizer.asymmetricCode(value, bits: bits[column], scale: s, zero: zeros[slot]) * s
    }
}

/// GPTQ (Frantar et al.): quantizes columns one at a time in `order` and spreads each column's
/// error over the columns not yet quantized, weighted by the inverse Hessian of the layer's
/// inputs (`H = E[xxᵀ]`), in blocks of `blockSize` with lazy updates. Without a Hessian it is
/// round-to-nearest on the same grid.
enum GPTQ {
    /// Fits one row's scale (and zero point, for an asymmetric grid) to a group's values at `bits`.
    typealias Fit = (_ values: UnsafeBufferPointer<Float>, _ bits: Int) -> (scale: Float, zero: Float)

    /// The dequantized weights (`rows × columns`, row-major) on `grid`. With `refit`, each group's
    /// scales are fitted when GPTQ reaches its first column, to the values as the errors fed back so
    /// far left them (as the reference does with groups; without a Hessian, to the original values),
    /// replacing whatever `grid` held for it; blocks then end at group ends.
    static func quantize(
        _ weights: [Float], rows: Int, columns: Int, grid: ColumnGrid, order: [Int], hessian: [Double]?,
        blockSize: Int = 128, damping: Double = 0.01, refit: Fit? = nil
    ) throws -> [Float] {
        var grid = grid
        // Work transposed and permuted: row a of `wt` is input column order[a], contiguous over outputs.
        var wt = [Float](repeating: 0, count: rows * columns)
        for a in 0..<columns {
            let c = order[a]
            for r in 0..<rows { wt[a * rows + r] = weights[r * columns + c] }
        }
        func quantize(_ a: Int, _ r: Int, _ value: Float) -> Float { grid.quantized(value, row: r, column: order[a]) }
        // Positions in `order` where a group starts (groups are runs of consecutive positions).
        let groupStarts = (0..<columns).filter { a in a == 0 || grid.group[order[a]] != grid.group[order[a - 1]] }
        func startGroup(_ a: Int, _ w: UnsafeMutableBufferPointer<Float>) {
            guard let refit else { return }
            let next = groupStarts.first { $0 > a } ?? columns
            let g = grid.group[order[a]]
            var values = [Float](repeating: 0, count: next - a)
            for r in 0..<rows {
                for k in a..<next { values[k - a] = w[k * rows + r] }
                let fitted = values.withUnsafeBufferPointer { refit($0, grid.bits[order[a]]) }
                grid.scales[r * grid.groupCount + g] = fitted.scale
                if !grid.zeros.isEmpty { grid.zeros[r * grid.groupCount + g] = fitted.zero }
            }
        }
        if let hessian {
            try feedback(
                &wt, rows: rows, columns: columns, order: order, hessian: hessian, quantize: quantize,
                blockSize: blockSize, damping: damping, groupStarts: refit == nil ? [] : groupStarts,
                startGroup: startGroup)
        } else {
            let starts = Set(refit == nil ? [] : groupStarts)
            wt.withUnsafeMutableBufferPointer { w in
                for a in 0..<columns {
                    if starts.contains(a) { startGroup(a, w) }
                    for r in 0..<rows { w[a * rows + r] = quantize(a, r, w[a * rows + r]) }
                }
            }
        }
        var result = [Float](repeating: 0, count: rows * columns)
        for a in 0..<columns {
            let c = order[a]
            for r in 0..<rows { result[r * columns + c] = wt[a * rows + r] }
        }
        return result
    }

    private static func feedback(
        _ wt: inout [Float], rows: Int, columns n: Int, order: [Int], hessian: [Double],
        quantize: (Int, Int, Float) -> Float, blockSize: Int, damping: Double, groupStarts: [Int],
        startGroup: (Int, UnsafeMutableBufferPointer<Float>) -> Void
    ) throws {
        var h = [Double](repeating: 0, count: n * n)
        for a in 0..<n {
            for b in 0..<n { h[a * n + b] = hessian[order[a] * n + order[b]] }
        }
        // Inputs that never fire carry no information: pin their diagonal and zero their weights.
        for a in 0..<n where h[a * n + a] == 0 {
            h[a * n + a] = 1
            for r in 0..<rows { wt[a * rows + r] = 0 }
        }
        let mean = (0..<n).reduce(0.0) { $0 + h[$1 * n + $1] } / Double(n)
        for a in 0..<n { h[a * n + a] += damping * mean }
        let hinv = try Matrix(rows: n, columns: n, elements: h).inverseCholeskyUpper().elements.map(Float.init)
        var errors = [Float](repeating: 0, count: blockSize * rows)
        try wt.withUnsafeMutableBufferPointer { w in
            try hinv.withUnsafeBufferPointer { u in
                try errors.withUnsafeMutableBufferPointer { e in
                    let starts = Set(groupStarts)
                    var first = 0
                    while first < n {
                        // A block ends at the last group end it reaches, so that a group's later
                        // columns have every earlier error fed back when its scales are fitted.
                        var count = min(blockSize, n - first)
                        if first + count < n, let end = groupStarts.last(where: { $0 > first && $0 <= first + count }) {
                            count = end - first
                        }
                        defer { first += count }
                        for i in 0..<count {
                            let a = first + i
                            if starts.contains(a) { startGroup(a, w) }
                            let d = u[a * n + a]
                            guard d > 0 else {
                                throw LatheError.invalidValue(
                                    field: "GPTQ inverse Hessian", value: "a non-positive pivot",
                                    expected: "a positive-definite Hessian")
                            }
                            for r in 0..<rows {
                                let value = w[a * rows + r]
                                let q = quantize(a, r, value)
                                w[a * rows + r] = q
                                e[i * rows + r] = (value - q) / d
                            }
                            for j in (i + 1)..<count {
                                let factor = u[a * n + first + j]
                                guard factor != 0 else { continue }
                                let target = (first + j) * rows
                                for r in 0..<rows { w[target + r] -= e[i * rows + r] * factor }
                            }
                        }
                        let rest = n - first - count
                        guard rest > 0 else { continue }
                        // Later columns: W[rest] -= Hinv[block, rest]ᵀ · E.
                        BLAS.gemm(
                            transA: .transposed, m: rest, n: rows, k: count, alpha: -1,
                            a: u.baseAddress! + first * n + first + count, lda: n, b: e.baseAddress!, ldb: rows,
                            beta: 1, c: w.baseAddress! + (first + count) * rows, ldc: rows)
                    }
                }
            }
        }
    }
}

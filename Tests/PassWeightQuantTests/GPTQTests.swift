import Foundation
import LatheCore
import LinearAlgebra
import Testing

@testable import PassWeightQuant

@Suite("GPTQ and the scale search")
struct GPTQTests {
    let rows = 6
    let columns = 10

    func grid(_ w: [Float], search: ScaleSearch) -> ColumnGrid {
        let scales = (0..<rows).map { r in
            w[(r * columns)..<((r + 1) * columns)].withContiguousStorageIfAvailable {
                search.scale(UnsafeBufferPointer(rebasing: $0[0..<columns]), bits: 4)
            } ?? 0
        }
        return ColumnGrid(
            bits: [Int](repeating: 4, count: columns), group: [Int](repeating: 0, count: columns), groupCount: 1,
            scales: scales)
    }

    @Test("with an identity Hessian there is nothing to feed back: GPTQ equals RTN exactly")
    func identityHessian() throws {
        var generator = SeededGenerator(seed: 9)
        let w = (0..<(rows * columns)).map { _ in Float(generator.nextGaussian()) }
        let g = grid(w, search: ScaleSearch(clipSearch: true))
        let identity = (0..<(columns * columns)).map { $0 % (columns + 1) == 0 ? 1.0 : 0.0 }
        let order = Array(0..<columns)
        let rtn = try GPTQ.quantize(w, rows: rows, columns: columns, grid: g, order: order, hessian: nil)
        let gptq = try GPTQ.quantize(w, rows: rows, columns: columns, grid: g, order: order, hessian: identity)
        #expect(rtn == gptq)
        // Every value lies on its row's grid.
        for r in 0..<rows {
            for c in 0..<columns {
                let code = rtn[r * columns + c] / g.scales[r]
                #expect(abs(code - code.rounded()) < 1e-4 && (-8...7).contains(code.rounded()))
            }
        }
    }

    @Test("asymmetric codes: round half to even, shift by the zero point, clamp to 0 … 2^bits − 1")
    func asymmetricCodes() {
        // Scale 0.5, zero point 3 on a 4-bit grid: levels −1.5 … 6.
        #expect(UniformQuantizer.asymmetricCode(1.25, bits: 4, scale: 0.5, zero: 3) == 2)  // 2.5 → 2
        #expect(UniformQuantizer.asymmetricCode(1.75, bits: 4, scale: 0.5, zero: 3) == 4)  // 3.5 → 4
        #expect(UniformQuantizer.asymmetricCode(-5, bits: 4, scale: 0.5, zero: 3) == -3)  // clamped at code 0
        #expect(UniformQuantizer.asymmetricCode(100, bits: 4, scale: 0.5, zero: 3) == 12)  // clamped at code 15
    }

    @Test("the asymmetric search covers a one-sided range, and GPTQ puts every value on its row's grid")
    func asymmetricGrid() throws {
        var generator = SeededGenerator(seed: 5)
        // Rows shifted away from zero, where a symmetric grid would waste half its levels.
        let w = (0..<(rows * columns)).map { i in Float(generator.nextGaussian()) * 0.1 + Float(i / columns) }
        let search = ScaleSearch(clipSearch: true)
        var g = grid(w, search: search)
        g.zeros = g.scales
        for r in 0..<rows {
            w[(r * columns)..<((r + 1) * columns)].withContiguousStorageIfAvailable {
                (g.scales[r], g.zeros[r]) = search.asymmetric(UnsafeBufferPointer(rebasing: $0[0..<columns]), bits: 4)
            }
        }
        let full = w[(3 * columns)..<(4 * columns)].withContiguousStorageIfAvailable {
            ScaleSearch(clipSearch: false).asymmetric(UnsafeBufferPointer(rebasing: $0[0..<columns]), bits: 4)
        }
        // Without the search the range is [0, max] (zero included, as GPTQ's find_params): zero point 0.
        #expect(full?.zero == 0 && full?.scale == w[(3 * columns)..<(4 * columns)].max()! / 15)
        var generator2 = SeededGenerator(seed: 6)
        let x = (0..<(64 * columns)).map { _ in Double(generator2.nextGaussian()) }
        var hessian = [Double](repeating: 0, count: columns * columns)
        for t in 0..<64 {
            for a in 0..<columns {
                for b in 0..<columns { hessian[a * columns + b] += x[t * columns + a] * x[t * columns + b] / 64 }
            }
        }
        let q = try GPTQ.quantize(w, rows: rows, columns: columns, grid: g, order: Array(0..<columns), hessian: hessian)
        var symmetricError: Float = 0
        var asymmetricError: Float = 0
        let symmetric = grid(w, search: search)
        for r in 0..<rows {
            for c in 0..<columns {
                let code = q[r * columns + c] / g.scales[r] + g.zeros[r]
                #expect(abs(code - code.rounded()) < 1e-3 && (0...15).contains(code.rounded()), "row \(r)")
                let v = w[r * columns + c]
                asymmetricError += pow(g.quantized(v, row: r, column: c) - v, 2)
                symmetricError += pow(symmetric.quantized(v, row: r, column: c) - v, 2)
            }
        }
        // Rounding alone: on one-sided rows the asymmetric grid spends all 15 steps on [0, max], the
        // symmetric one 7.
        #expect(asymmetricError < symmetricError / 2)
    }

    @Test("refitted group scales: RTN's grid without feedback, at most 16 levels per row and group with it")
    func refittedGroups() throws {
        let columns = 40  // groups of 16: 16, 16 and 8 columns, so blocks of 20 end at group ends
        var generator = SeededGenerator(seed: 12)
        let w = (0..<(rows * columns)).map { _ in Float(generator.nextGaussian()) }
        let search = ScaleSearch(clipSearch: true)
        let group = (0..<columns).map { $0 / 16 }
        var g = ColumnGrid(
            bits: [Int](repeating: 4, count: columns), group: group, groupCount: 3,
            scales: [Float](repeating: 0, count: rows * 3))
        g.zeros = g.scales
        let fit: GPTQ.Fit = { values, bits in search.asymmetric(values, bits: bits) }
        for r in 0..<rows {
            for k in 0..<3 {
                let members = Array(w[(r * columns + 16 * k)..<(r * columns + min(16 * k + 16, columns))])
                (g.scales[r * 3 + k], g.zeros[r * 3 + k]) = members.withUnsafeBufferPointer { fit($0, 4) }
            }
        }
        let order = Array(0..<columns)
        let identity = (0..<(columns * columns)).map { $0 % (columns + 1) == 0 ? 1.0 : 0.0 }
        let rtn = try GPTQ.quantize(w, rows: rows, columns: columns, grid: g, order: order, hessian: nil)
        let refitted = try GPTQ.quantize(
            w, rows: rows, columns: columns, grid: g, order: order, hessian: identity, blockSize: 20, refit: fit)
        #expect(refitted == rtn)
        // Without a Hessian the groups are fitted as they are reached too, to the same original values.
        let rtnRefitted = try GPTQ.quantize(
            w, rows: rows, columns: columns, grid: g, order: order, hessian: nil, blockSize: 20, refit: fit)
        #expect(rtnRefitted == rtn)

        var generator2 = SeededGenerator(seed: 13)
        let x = (0..<(80 * columns)).map { _ in Double(generator2.nextGaussian()) }
        // Correlated inputs (each plus its neighbour), so errors are fed back: H = E[yyᵀ].
        let y = (0..<(80 * columns)).map { i in x[i] + x[i / columns * columns + (i % columns + 1) % columns] }
        var hessian = [Double](repeating: 0, count: columns * columns)
        for t in 0..<80 {
            for a in 0..<columns {
                for b in 0..<columns { hessian[a * columns + b] += y[t * columns + a] * y[t * columns + b] / 80 }
            }
        }
        let fedBack = try GPTQ.quantize(
            w, rows: rows, columns: columns, grid: g, order: order, hessian: hessian, blockSize: 20, refit: fit)
        #expect(fedBack != rtn)
        var offOriginalGrid = 0
        for r in 0..<rows {
            for k in 0..<3 {
                let levels = Set(fedBack[(r * columns + 16 * k)..<(r * columns + min(16 * k + 16, columns))])
                #expect(levels.count <= 16, "row \(r), group \(k)")
                let codes = levels.map { $0 / g.scales[r * 3 + k] }
                if codes.contains(where: { abs($0 - $0.rounded()) > 1e-3 }) { offOriginalGrid += 1 }
            }
        }
        // The later groups were refitted to the fed-back values: their levels left the first fit's grid.
        #expect(offOriginalGrid > 0)
    }

    @Test("the clip search never does worse than the full range in its own error measure")
    func clipSearch() {
        var generator = SeededGenerator(seed: 4)
        var values = (0..<64).map { _ in Float(generator.nextGaussian()) }
        values[5] = 9  // one outlier: clipping it pays off
        func error(_ scale: Float) -> Float {
            values.reduce(0) { sum, v in
                sum + pow(abs(UniformQuantizer.symmetricCode(v, bits: 4, scale: scale) * scale - v), 2.4)
            }
        }
        let searched = values.withUnsafeBufferPointer { ScaleSearch(clipSearch: true).scale($0, bits: 4) }
        let full = values.withUnsafeBufferPointer { ScaleSearch(clipSearch: false).scale($0, bits: 4) }
        #expect(full == Float(9) / 7)
        #expect(searched < full && error(searched) <= error(full))
    }
}

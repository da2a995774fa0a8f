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

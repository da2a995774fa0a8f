import Foundation
import LatheTestSupport
import Testing

@testable import LinearAlgebra

@Suite("Hadamard matrices")
struct HadamardTests {
    static let orders: [Int] =
        [1, 2, 4, 64, 576, 1536]
        + [12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172]
        + [24, 48, 344, 312, 280]

    @Test("every base order the library lists includes what real models need")
    func baseOrders() {
        for needed in [12, 20, 28, 36, 40, 52, 60, 108, 140, 156, 172] {
            #expect(Hadamard.supportedBaseOrders.contains(needed), "missing base order \(needed)")
        }
        #expect(Hadamard.factorization(of: 1536)! == (12, 128))
        #expect(Hadamard.factorization(of: 576)! == (36, 16))
        #expect(Hadamard.factorization(of: 4096)! == (1, 4096))
        #expect(Hadamard.factorization(of: 49152)! == (12, 4096))
        #expect(Hadamard.factorization(of: 100) == nil)
    }

    @Test("H·Hᵀ = n·I exactly, with ±1 entries", arguments: orders)
    func orthogonality(n: Int) throws {
        let h = try Hadamard.matrix(order: n, as: Double.self)
        #expect(h.elements.allSatisfy { $0 == 1 || $0 == -1 })
        let gram = h * h.transposed()
        var expected = Matrix<Double>.identity(n)
        for i in 0..<n { expected[i, i] = Double(n) }
        #expect(gram == expected)
    }

    @Test("the fast transform equals the dense product exactly on integer data", arguments: orders)
    func fastEqualsDense(n: Int) throws {
        var generator = SeededGenerator(seed: UInt64(n))
        let vectors = 3
        let input = (0..<(n * vectors)).map { _ in Float(generator.nextIndex(below: 17)) - 8 }
        let h = try Hadamard.matrix(order: n, as: Float.self)
        var transformed = input
        try transformed.withUnsafeMutableBufferPointer { try Hadamard.transform($0, order: n) }
        for v in 0..<vectors {
            var expected = [Float](repeating: 0, count: n)
            BLAS.gemv(h, Array(input[(v * n)..<((v + 1) * n)]), into: &expected)
            #expect(Array(transformed[(v * n)..<((v + 1) * n)]) == expected)
        }
    }

    @Test("the normalised transform preserves the norm (1e-5 relative)")
    func normalised() throws {
        var generator = SeededGenerator(seed: 77)
        let n = 1536
        let input = (0..<n).map { _ in Float(generator.nextGaussian()) }
        var output = input
        try output.withUnsafeMutableBufferPointer {
            try Hadamard.transform($0, order: n, scale: 1 / Float(n).squareRoot())
        }
        let before = input.reduce(0) { $0 + $1 * $1 }
        let after = output.reduce(0) { $0 + $1 * $1 }
        #expect(abs(before - after) / before < 1e-5)
    }

    @Test("the lpack spec's matrices are the library's: had_12 printed in full, Williamson rows, the factorization")
    func matchesSpecification() throws {
        let spec = try String(
            contentsOf: Fixtures.packageRoot.appendingPathComponent("formats/packed/SPEC.md"), encoding: .utf8)
        // had_12 is the twelve lines of twelve signs after the SmolLM2 sentence.
        let after = try #require(spec.range(of: "`had_12` is:")).upperBound
        let lines = spec[after...].split(separator: "\n").filter {
            $0.count == 12 && $0.allSatisfy { "+-".contains($0) }
        }
        let printed = lines.prefix(12).joined().map { Float($0 == "+" ? 1 : -1) }
        #expect(printed == (try Hadamard.baseMatrix(order: 12)).elements)
        // The Williamson rows and the base orders listed.
        for (order, rows) in [(39, HadamardConstruction.williamson39), (43, HadamardConstruction.williamson43)] {
            for (letter, row) in zip(["A", "B", "C", "D"], rows) {
                #expect(spec.contains("\(order) \(letter)  \(row)"), "\(order) \(letter)")
            }
        }
        for order in Hadamard.supportedBaseOrders {
            #expect(
                spec.contains("| \(order),") || spec.contains(" \(order) |") || spec.contains(", \(order)"), "\(order)")
        }
        #expect(Hadamard.factorization(of: 1536)! == (12, 128))
    }

    @Test("an unsupported order is a clear error")
    func unsupported() {
        #expect(throws: LinearAlgebraError.self) { try Hadamard.matrix(order: 100, as: Float.self) }
        var values = [Float](repeating: 0, count: 10)
        #expect(throws: LinearAlgebraError.self) {
            try values.withUnsafeMutableBufferPointer { try Hadamard.transform($0, order: 4) }
        }
    }
}

import LatheCore
import LinearAlgebra
import Testing

@testable import PassRotate

@Suite("rotation building blocks")
struct RotationTests {
    func isOrthogonal(_ u: [Double], _ n: Int) -> Bool {
        let product = Dense.multiply(u, u, m: n, k: n, n: n, transA: true)
        return (0..<n).allSatisfy { i in (0..<n).allSatisfy { j in abs(product[i * n + j] - (i == j ? 1 : 0)) < 1e-12 }
        }
    }

    @Test(
        "every kind gives an orthogonal block-diagonal matrix that keeps the subspaces apart (1e-12)",
        arguments: ["random", "hadamard", "randomized-hadamard"])
    func blockDiagonal(_ kind: String) throws {
        var generator = SeededGenerator(seed: 1)
        let rotation = try #require(RotationKind(rawValue: kind))
        let u = try rotation.blockDiagonal(24, high: 8, using: &generator)
        #expect(isOrthogonal(u, 24))
        for r in 0..<16 { for c in 16..<24 { #expect(u[r * 24 + c] == 0 && u[c * 24 + r] == 0) } }
    }

    @Test("transformed statistics equal those of the transformed activations (1e-12)")
    func statistics() throws {
        var generator = SeededGenerator(seed: 2)
        let n = 5
        let u = try Matrix<Double>.randomOrthogonal(n, using: &generator).elements
        let rows = (0..<7).map { _ in (0..<n).map { _ in generator.nextGaussian() } }
        var moments = ActivationMoments(width: n)
        for x in rows {
            for i in 0..<n {
                moments.sum[i] += x[i]
                for j in 0..<n { moments.secondMoment[i * n + j] += x[i] * x[j] }
            }
        }
        Dense.transform(&moments, by: u)
        let rotated = rows.map { Dense.multiply($0, u, m: 1, k: n, n: n) }
        for i in 0..<n {
            for j in 0..<n {
                let direct = rotated.reduce(0.0) { $0 + $1[i] * $1[j] }
                #expect(abs(moments.secondMoment[i * n + j] - direct) < 1e-12)
            }
            #expect(abs(moments.sum[i] - rotated.reduce(0.0) { $0 + $1[i] }) < 1e-12)
        }
    }
}

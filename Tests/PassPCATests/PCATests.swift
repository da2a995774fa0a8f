import LatheCore
import LatheTestSupport
import LinearAlgebra
import Testing

@testable import PassPCA

@Suite("pca-basis")
struct PCATests {
    @Test("the eigenbasis of Q·diag(λ)·Qᵀ is Q's columns up to sign, eigenvalues ascending (1e-10)")
    func eigenbasis() throws {
        var generator = SeededGenerator(seed: 3)
        let n = 6
        let q = try Matrix<Double>.randomOrthogonal(n, using: &generator)
        let lambda: [Double] = [5, 0.5, 3, 9, 1, 2]
        let c = Matrix(rows: n, columns: n) { i, j in (0..<n).reduce(0.0) { $0 + q[i, $1] * lambda[$1] * q[j, $1] } }
        let (vectors, values) = try PCABasisPass.eigenbasis(c.elements, n: n)
        #expect(zip(values, lambda.sorted()).allSatisfy { abs($0 - $1) < 1e-10 })
        // The last column belongs to λ = 9, which is Q's column 3.
        let dot = (0..<n).reduce(0.0) { $0 + vectors[$1 * n + n - 1] * q[$1, 3] }
        #expect(abs(abs(dot) - 1) < 1e-10)
    }

    @Test("a missing statistic is an error naming it; a rank fraction above 1 is refused")
    func missingStatistic() throws {
        var graph = try TinyModel.graph()
        var context = PassContext()
        context[CalibrationArtifact.self] = CalibrationMoments()
        let pass = try PCABasisPass(options: .init(rankFraction: 0.25, residual: true, values: false, keys: false))
        do {
            try pass.apply(&graph, context: &context)
            Issue.record("expected an error")
        } catch let error as LatheError {
            #expect(error.errorDescription?.contains("attn_input.0") == true)
        }
        #expect(throws: LatheError.self) { try PCABasisPass(options: .init(rankFraction: 2)) }
    }
}

import Foundation
import LatheTestSupport
import LinearAlgebra
import Testing

/// The product computed by plain loops in Double, as the oracle for BLAS.
func naiveProduct(_ a: Matrix<Float>, _ b: Matrix<Float>) -> Matrix<Float> {
    Matrix(rows: a.rows, columns: b.columns) { r, c in
        Float((0..<a.columns).reduce(0.0) { $0 + Double(a[r, $1]) * Double(b[$1, c]) })
    }
}

func randomMatrix(_ rows: Int, _ columns: Int, seed: UInt64) -> Matrix<Float> {
    var generator = SeededGenerator(seed: seed)
    return Matrix(rows: rows, columns: columns) { _, _ in Float(generator.nextGaussian()) }
}

@Suite("BLAS")
struct BLASTests {
    @Test(
        "gemm matches a naive product for every transpose combination (1e-5 relative)",
        arguments: [
            (Transpose.none, Transpose.none), (.none, .transposed), (.transposed, .none), (.transposed, .transposed),
        ])
    func gemmTransposes(transposes: (Transpose, Transpose)) {
        let (m, k, n) = (13, 29, 7)
        let a = randomMatrix(m, k, seed: 1)
        let b = randomMatrix(k, n, seed: 2)
        let storedA = transposes.0 == .none ? a : a.transposed()
        let storedB = transposes.1 == .none ? b : b.transposed()
        var c = Matrix<Float>(rows: m, columns: n)
        BLAS.gemm(storedA, transA: transposes.0, storedB, transB: transposes.1, into: &c)
        let expected = naiveProduct(a, b)
        #expect(relativeError(c.elements, expected.elements) < 1e-5)
    }

    @Test("gemm honours alpha and beta")
    func alphaBeta() {
        let a = randomMatrix(4, 5, seed: 3)
        let b = randomMatrix(5, 6, seed: 4)
        var c = randomMatrix(4, 6, seed: 5)
        let before = c
        BLAS.gemm(a, b, alpha: 2, beta: -1, into: &c)
        let product = naiveProduct(a, b)
        let expected = zip(product.elements, before.elements).map { 2 * $0 - $1 }
        #expect(relativeError(c.elements, expected) < 1e-5)
    }

    @Test("gemv matches gemm with one column, plain and transposed")
    func gemv() {
        let a = randomMatrix(9, 11, seed: 6)
        let x = randomMatrix(11, 1, seed: 7)
        var y = [Float](repeating: 0, count: 9)
        BLAS.gemv(a, x.elements, into: &y)
        #expect(relativeError(y, naiveProduct(a, x).elements) < 1e-5)
        let z = randomMatrix(9, 1, seed: 8)
        var w = [Float](repeating: 0, count: 11)
        BLAS.gemv(a, transA: .transposed, z.elements, into: &w)
        #expect(relativeError(w, naiveProduct(a.transposed(), z).elements) < 1e-5)
    }

    @Test("the thread count reads back OPENBLAS_NUM_THREADS, and withThreadCount restores it")
    func threads() {
        // Changing the count while other tests run BLAS is unsafe in OpenBLAS, so this sets the value it
        // already has: the call path is exercised, and the read-back must agree.
        let original = BLAS.threadCount
        #expect(original >= 1)
        if let configured = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"].flatMap(Int.init) {
            #expect(original == configured)
        }
        let inside = BLAS.withThreadCount(original) { BLAS.threadCount }
        #expect(inside == original)
        #expect(BLAS.threadCount == original)
    }
}

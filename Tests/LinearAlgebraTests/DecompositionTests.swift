import LatheTestSupport
import LinearAlgebra
import Testing

/// A random symmetric positive definite matrix `G·Gᵀ + n·I`.
func randomSPD<T: BLASScalar>(_ n: Int, seed: UInt64, as _: T.Type) -> Matrix<T> {
    var generator = SeededGenerator(seed: seed)
    let g = Matrix<T>(rows: n, columns: n) { _, _ in T(generator.nextGaussian()) }
    var spd = g * g.transposed()
    for i in 0..<n { spd[i, i] += T(n) }
    return spd
}

/// V·diag(λ)·Vᵀ.
func reconstruct<T: BLASScalar>(_ e: SymmetricEigendecomposition<T>) -> Matrix<T> {
    let n = e.values.count
    let scaled = Matrix<T>(rows: n, columns: n) { r, c in e.vectors[r, c] * e.values[c] }
    return scaled * e.vectors.transposed()
}

func frobenius<T: BLASScalar>(_ m: Matrix<T>) -> T {
    m.elements.reduce(0) { $0 + $1 * $1 }.squareRoot()
}

func difference<T: BLASScalar>(_ a: Matrix<T>, _ b: Matrix<T>) -> Matrix<T> {
    Matrix(rows: a.rows, columns: a.columns, elements: zip(a.elements, b.elements).map { $0 - $1 })
}

@Suite("Symmetric eigendecomposition")
struct EigenTests {
    @Test("reconstructs a random SPD matrix to 1e-5 relative in Float", arguments: [1, 7, 64, 200])
    func floatReconstruction(n: Int) throws {
        let a = randomSPD(n, seed: UInt64(n), as: Float.self)
        let e = try a.symmetricEigendecomposition()
        let error = frobenius(difference(reconstruct(e), a)) / frobenius(a)
        #expect(error < 1e-5, "relative reconstruction error \(error)")
    }

    @Test("reconstructs a random SPD matrix to 1e-12 relative in Double", arguments: [1, 7, 64, 200])
    func doubleReconstruction(n: Int) throws {
        let a = randomSPD(n, seed: UInt64(n) + 100, as: Double.self)
        let e = try a.symmetricEigendecomposition()
        let error = frobenius(difference(reconstruct(e), a)) / frobenius(a)
        #expect(error < 1e-12, "relative reconstruction error \(error)")
    }

    @Test("returns eigenvalues in ascending order with orthonormal eigenvectors")
    func ascendingOrthonormal() throws {
        let a = randomSPD(50, seed: 9, as: Double.self)
        let e = try a.symmetricEigendecomposition()
        #expect(zip(e.values, e.values.dropFirst()).allSatisfy { $0 <= $1 })
        let gram = e.vectors.transposed() * e.vectors
        #expect(gram.maxAbsDifference(.identity(50)) < 1e-12)
    }

    @Test("matches the known spectrum of a small matrix")
    func knownSpectrum() throws {
        // [[2, 1], [1, 2]] has eigenvalues 1 and 3 with eigenvectors (1, −1)/√2 and (1, 1)/√2.
        let e = try Matrix<Double>(rows: 2, columns: 2, elements: [2, 1, 1, 2]).symmetricEigendecomposition()
        #expect(isClose(e.values[0], 1, relative: 1e-14))
        #expect(isClose(e.values[1], 3, relative: 1e-14))
        #expect(isClose(abs(e.vectors[0, 1]), 1 / 2.0.squareRoot(), relative: 1e-14))
        #expect(e.vectors[0, 0] * e.vectors[1, 0] < 0, "first eigenvector is (1, −1) up to sign")
    }

    @Test("rejects a non-square matrix, naming the routine")
    func rejectsNonSquare() {
        #expect(throws: LinearAlgebraError.shapeMismatch(routine: "syevd", detail: "matrix is 2×3, not square")) {
            try Matrix<Float>(rows: 2, columns: 3).symmetricEigendecomposition()
        }
    }
}

@Suite("QR and random orthogonal matrices")
struct QRTests {
    @Test("QR's Q is orthogonal to 1e-6 and Q·R reproduces A", arguments: [(5, 5), (40, 40), (60, 17)])
    func qr(shape: (Int, Int)) throws {
        var generator = SeededGenerator(seed: 3)
        let a = Matrix<Float>(rows: shape.0, columns: shape.1) { _, _ in Float(generator.nextGaussian()) }
        let qr = try a.qrDecomposition()
        let gram = qr.q.transposed() * qr.q
        #expect(gram.maxAbsDifference(.identity(shape.1)) < 1e-6)
        #expect((qr.q * qr.r).maxAbsDifference(a) < 1e-5)
        for i in 0..<shape.1 {
            for j in 0..<i { #expect(qr.r[i, j] == 0, "R is upper triangular") }
        }
    }

    @Test("the random orthogonal generator is orthogonal and repeatable for a seed")
    func randomOrthogonalRepeatable() throws {
        var first = SeededGenerator(seed: 2024)
        var second = SeededGenerator(seed: 2024)
        var other = SeededGenerator(seed: 2025)
        let a = try Matrix<Double>.randomOrthogonal(72, using: &first)
        let b = try Matrix<Double>.randomOrthogonal(72, using: &second)
        let c = try Matrix<Double>.randomOrthogonal(72, using: &other)
        #expect(a == b, "same seed, same matrix, bit for bit")
        #expect(a != c)
        #expect((a * a.transposed()).maxAbsDifference(.identity(72)) < 1e-12)
    }

    @Test("the sign fix makes the diagonal of R positive, so Q is Haar-distributed")
    func signFix() throws {
        // With the fix, the mean of Q's diagonal over many draws is ~0 (not biased).
        var generator = SeededGenerator(seed: 11)
        var diagonalSum = 0.0
        let draws = 200
        for _ in 0..<draws {
            let q = try Matrix<Double>.randomOrthogonal(4, using: &generator)
            diagonalSum += (0..<4).map { q[$0, $0] }.reduce(0, +)
        }
        // Each diagonal entry has variance 1/4 under Haar measure: the mean of 800 is within ±0.1 (5σ ≈ 0.09).
        #expect(abs(diagonalSum / Double(draws * 4)) < 0.1)
    }
}

@Suite("Seeded generator")
struct SeededGeneratorTests {
    @Test("produces the reference xoshiro256** stream for seed 42")
    func referenceStream() {
        // Computed with an independent Python implementation of SplitMix64 + xoshiro256**.
        var generator = SeededGenerator(seed: 42)
        let expected: [UInt64] = [
            0x1578_0b2e_0c2e_c716, 0x6104_d986_6d11_3a7e, 0xae17_5332_39e4_99a1, 0xecb8_ad47_03b3_60a1,
        ]
        #expect((0..<4).map { _ in generator.next() } == expected)
        var uniform = SeededGenerator(seed: 42)
        #expect(uniform.nextUniform() == 0.08386297105988216)
    }

    @Test("Gaussian draws have mean ~0 and variance ~1")
    func gaussianMoments() {
        var generator = SeededGenerator(seed: 5)
        let samples = (0..<20000).map { _ in generator.nextGaussian() }
        let mean = samples.reduce(0, +) / Double(samples.count)
        let variance = samples.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(samples.count)
        // Standard error of the mean is 1/√20000 ≈ 0.007; of the variance ≈ 0.01.
        #expect(abs(mean) < 0.03)
        #expect(abs(variance - 1) < 0.05)
    }

    @Test("bounded integers stay in range and cover it")
    func boundedIndex() {
        var generator = SeededGenerator(seed: 8)
        let draws = (0..<1000).map { _ in generator.nextIndex(below: 7) }
        #expect(draws.allSatisfy { (0..<7).contains($0) })
        #expect(Set(draws).count == 7)
    }
}

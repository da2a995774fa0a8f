/// The eigenvalues and eigenvectors of a symmetric matrix.
public struct SymmetricEigendecomposition<Scalar: BLASScalar>: Sendable {
    /// Eigenvalues in ascending order.
    public var values: [Scalar]
    /// Eigenvectors as columns: column `j` belongs to `values[j]`.
    public var vectors: Matrix<Scalar>
}

/// A thin QR factorization `A = Q · R` of an `m×n` matrix with `m ≥ n`.
public struct QRDecomposition<Scalar: BLASScalar>: Sendable {
    /// `m×n` with orthonormal columns.
    public var q: Matrix<Scalar>
    /// `n×n` upper triangular.
    public var r: Matrix<Scalar>
}

extension Matrix {
    /// Eigendecomposition of a symmetric matrix (LAPACK `syevd`, divide and conquer). Only the upper
    /// triangle is read.
    public func symmetricEigendecomposition() throws -> SymmetricEigendecomposition<Scalar> {
        guard rows == columns else {
            throw LinearAlgebraError.shapeMismatch(routine: "syevd", detail: "matrix is \(rows)×\(columns), not square")
        }
        var a = elements
        var w = [Scalar](repeating: 0, count: rows)
        guard rows > 0 else { return SymmetricEigendecomposition(values: [], vectors: self) }
        let info = a.withUnsafeMutableBufferPointer { pa in
            w.withUnsafeMutableBufferPointer { pw in
                Scalar.syevd(blasInt(rows), pa.baseAddress!, pw.baseAddress!)
            }
        }
        try checkLAPACK(info, routine: "syevd")
        return SymmetricEigendecomposition(values: w, vectors: Matrix(rows: rows, columns: rows, elements: a))
    }

    /// Thin QR factorization (LAPACK `geqrf` then `orgqr`).
    public func qrDecomposition() throws -> QRDecomposition<Scalar> {
        guard rows >= columns else {
            throw LinearAlgebraError.shapeMismatch(
                routine: "geqrf", detail: "matrix is \(rows)×\(columns); QR needs at least as many rows as columns")
        }
        guard columns > 0 else {
            return QRDecomposition(q: Matrix(rows: rows, columns: 0), r: Matrix(rows: 0, columns: 0))
        }
        var a = elements
        var tau = [Scalar](repeating: 0, count: columns)
        let m = blasInt(rows)
        let n = blasInt(columns)
        let factorInfo = a.withUnsafeMutableBufferPointer { pa in
            tau.withUnsafeMutableBufferPointer { pt in Scalar.geqrf(m, n, pa.baseAddress!, pt.baseAddress!) }
        }
        try checkLAPACK(factorInfo, routine: "geqrf")
        let r = Matrix(rows: columns, columns: columns) { i, j in j >= i ? a[i * columns + j] : 0 }
        let formInfo = a.withUnsafeMutableBufferPointer { pa in
            tau.withUnsafeBufferPointer { pt in Scalar.orgqr(m, n, n, pa.baseAddress!, pt.baseAddress!) }
        }
        try checkLAPACK(formInfo, routine: "orgqr")
        return QRDecomposition(q: Matrix(rows: rows, columns: columns, elements: a), r: r)
    }
}

extension Matrix {
    /// A Haar-distributed random orthogonal `n×n` matrix: QR of a Gaussian matrix with the signs of
    /// `R`'s diagonal folded into `Q` (without that fix the distribution is not uniform).
    ///
    /// The same generator state gives the same matrix on every run.
    public static func randomOrthogonal(_ n: Int, using generator: inout SeededGenerator) throws -> Matrix {
        var gaussian = Matrix(rows: n, columns: n)
        for i in gaussian.elements.indices { gaussian.elements[i] = Scalar(generator.nextGaussian()) }
        let qr = try gaussian.qrDecomposition()
        var q = qr.q
        for column in 0..<n where qr.r[column, column] < 0 {
            for row in 0..<n { q[row, column] = -q[row, column] }
        }
        return q
    }
}

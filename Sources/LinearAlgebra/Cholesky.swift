import CLAPACKE

extension Matrix where Scalar == Double {
    /// The upper Cholesky factor `U` of this matrix's inverse (`A⁻¹ = UᵀU`), for a symmetric
    /// positive-definite `A`: LAPACK `potrf`, `potri`, then `potrf` again. GPTQ walks its rows.
    public func inverseCholeskyUpper() throws -> Matrix {
        guard rows == columns else {
            throw LinearAlgebraError.shapeMismatch(routine: "potrf", detail: "matrix is \(rows)×\(columns), not square")
        }
        guard rows > 0 else { return self }
        var a = elements
        let n = blasInt(rows)
        let upper = CChar(UInt8(ascii: "U"))
        try a.withUnsafeMutableBufferPointer { p throws(LinearAlgebraError) in
            try checkLAPACK(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, upper, n, p.baseAddress!, n), routine: "potrf")
            try checkLAPACK(LAPACKE_dpotri(LAPACK_ROW_MAJOR, upper, n, p.baseAddress!, n), routine: "potri")
        }
        // potri fills the upper triangle of A⁻¹; mirror it before factoring again.
        for i in 0..<rows {
            for j in 0..<i { a[i * rows + j] = a[j * rows + i] }
        }
        try a.withUnsafeMutableBufferPointer { p throws(LinearAlgebraError) in
            try checkLAPACK(LAPACKE_dpotrf(LAPACK_ROW_MAJOR, upper, n, p.baseAddress!, n), routine: "potrf")
        }
        for i in 0..<rows {
            for j in 0..<i { a[i * rows + j] = 0 }
        }
        return Matrix(rows: rows, columns: columns, elements: a)
    }
}

import CLAPACKE
import COpenBLAS

/// The scalar types BLAS and LAPACK work in: `Float` and `Double`.
///
/// Each requirement forwards to the matching `s`/`d` routine, so generic code in this module never
/// switches on the type. C types stay behind this protocol.
public protocol BLASScalar: BinaryFloatingPoint, Sendable
where Self.RawSignificand: FixedWidthInteger {
    static func gemm(
        _ transA: CBLAS_TRANSPOSE, _ transB: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ k: Int32,
        _ alpha: Self, _ a: UnsafePointer<Self>, _ lda: Int32, _ b: UnsafePointer<Self>, _ ldb: Int32,
        _ beta: Self, _ c: UnsafeMutablePointer<Self>, _ ldc: Int32)
    static func gemv(
        _ trans: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ alpha: Self, _ a: UnsafePointer<Self>,
        _ lda: Int32, _ x: UnsafePointer<Self>, _ beta: Self, _ y: UnsafeMutablePointer<Self>)
    static func syevd(_ n: Int32, _ a: UnsafeMutablePointer<Self>, _ w: UnsafeMutablePointer<Self>) -> Int32
    static func geqrf(_ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Self>, _ tau: UnsafeMutablePointer<Self>)
        -> Int32
    static func orgqr(
        _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Self>, _ tau: UnsafePointer<Self>
    ) -> Int32
}

extension Float: BLASScalar {
    public static func gemm(
        _ transA: CBLAS_TRANSPOSE, _ transB: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ k: Int32,
        _ alpha: Float, _ a: UnsafePointer<Float>, _ lda: Int32, _ b: UnsafePointer<Float>, _ ldb: Int32,
        _ beta: Float, _ c: UnsafeMutablePointer<Float>, _ ldc: Int32
    ) {
        cblas_sgemm(CblasRowMajor, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
    public static func gemv(
        _ trans: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ alpha: Float, _ a: UnsafePointer<Float>,
        _ lda: Int32, _ x: UnsafePointer<Float>, _ beta: Float, _ y: UnsafeMutablePointer<Float>
    ) {
        cblas_sgemv(CblasRowMajor, trans, m, n, alpha, a, lda, x, 1, beta, y, 1)
    }
    public static func syevd(_ n: Int32, _ a: UnsafeMutablePointer<Float>, _ w: UnsafeMutablePointer<Float>) -> Int32 {
        LAPACKE_ssyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), n, a, n, w)
    }
    public static func geqrf(
        _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Float>, _ tau: UnsafeMutablePointer<Float>
    )
        -> Int32
    {
        LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, m, n, a, n, tau)
    }
    public static func orgqr(
        _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Float>, _ tau: UnsafePointer<Float>
    ) -> Int32 {
        LAPACKE_sorgqr(LAPACK_ROW_MAJOR, m, n, k, a, n, tau)
    }
}

extension Double: BLASScalar {
    public static func gemm(
        _ transA: CBLAS_TRANSPOSE, _ transB: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ k: Int32,
        _ alpha: Double, _ a: UnsafePointer<Double>, _ lda: Int32, _ b: UnsafePointer<Double>, _ ldb: Int32,
        _ beta: Double, _ c: UnsafeMutablePointer<Double>, _ ldc: Int32
    ) {
        cblas_dgemm(CblasRowMajor, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }
    public static func gemv(
        _ trans: CBLAS_TRANSPOSE, _ m: Int32, _ n: Int32, _ alpha: Double, _ a: UnsafePointer<Double>,
        _ lda: Int32, _ x: UnsafePointer<Double>, _ beta: Double, _ y: UnsafeMutablePointer<Double>
    ) {
        cblas_dgemv(CblasRowMajor, trans, m, n, alpha, a, lda, x, 1, beta, y, 1)
    }
    public static func syevd(_ n: Int32, _ a: UnsafeMutablePointer<Double>, _ w: UnsafeMutablePointer<Double>) -> Int32
    {
        LAPACKE_dsyevd(LAPACK_ROW_MAJOR, CChar(UInt8(ascii: "V")), CChar(UInt8(ascii: "U")), n, a, n, w)
    }
    public static func geqrf(
        _ m: Int32, _ n: Int32, _ a: UnsafeMutablePointer<Double>, _ tau: UnsafeMutablePointer<Double>
    ) -> Int32 {
        LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, m, n, a, n, tau)
    }
    public static func orgqr(
        _ m: Int32, _ n: Int32, _ k: Int32, _ a: UnsafeMutablePointer<Double>, _ tau: UnsafePointer<Double>
    ) -> Int32 {
        LAPACKE_dorgqr(LAPACK_ROW_MAJOR, m, n, k, a, n, tau)
    }
}

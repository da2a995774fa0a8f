import COpenBLAS

/// Whether an operand enters a product as stored or transposed.
public enum Transpose: Sendable {
    case none
    case transposed

    var cblas: CBLAS_TRANSPOSE { self == .none ? CblasNoTrans : CblasTrans }
}

/// Row-major GEMM/GEMV on OpenBLAS, plus control of its worker threads.
public enum BLAS {
    /// `C ← alpha · op(A) · op(B) + beta · C` on raw row-major buffers.
    ///
    /// `op(A)` is `m×k`, `op(B)` is `k×n`, `C` is `m×n`; `lda`, `ldb`, `ldc` are the row strides of the
    /// buffers as stored. This is the entry point the runtime uses on its own scratch memory.
    public static func gemm<T: BLASScalar>(
        transA: Transpose = .none, transB: Transpose = .none, m: Int, n: Int, k: Int,
        alpha: T = 1, a: UnsafePointer<T>, lda: Int, b: UnsafePointer<T>, ldb: Int,
        beta: T = 0, c: UnsafeMutablePointer<T>, ldc: Int
    ) {
        T.gemm(
            transA.cblas, transB.cblas, blasInt(m), blasInt(n), blasInt(k), alpha, a, blasInt(lda), b,
            blasInt(ldb), beta, c, blasInt(ldc))
    }

    /// `C ← alpha · op(A) · op(B) + beta · C` on matrices; shapes are checked.
    public static func gemm<T: BLASScalar>(
        _ a: Matrix<T>, transA: Transpose = .none, _ b: Matrix<T>, transB: Transpose = .none,
        alpha: T = 1, beta: T = 0, into c: inout Matrix<T>
    ) {
        let (m, k) = transA == .none ? (a.rows, a.columns) : (a.columns, a.rows)
        let (kb, n) = transB == .none ? (b.rows, b.columns) : (b.columns, b.rows)
        precondition(k == kb, "gemm: inner dimensions differ (\(k) vs \(kb))")
        precondition(c.rows == m && c.columns == n, "gemm: output is \(c.rows)×\(c.columns), expected \(m)×\(n)")
        guard m > 0, n > 0 else { return }
        if k == 0 {
            for i in c.elements.indices { c.elements[i] *= beta }
            return
        }
        let (lda, ldb, ldc) = (max(a.columns, 1), max(b.columns, 1), max(c.columns, 1))
        a.elements.withUnsafeBufferPointer { pa in
            b.elements.withUnsafeBufferPointer { pb in
                c.elements.withUnsafeMutableBufferPointer { pc in
                    // Non-empty shapes guarantee non-nil base addresses.
                    gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!,
                        lda: lda, b: pb.baseAddress!, ldb: ldb, beta: beta, c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
    }

    /// `y ← alpha · A · x` (or `Aᵀ · x` when `transposed`) for a row-major `rows × columns` matrix
    /// at `a` (leading dimension `lda`): the product without GEMM's packing copies, for decoding.
    public static func gemv<T: BLASScalar>(
        rows: Int, columns: Int, alpha: T = 1, a: UnsafePointer<T>, lda: Int, transposed: Bool = false,
        x: UnsafePointer<T>, y: UnsafeMutablePointer<T>
    ) {
        guard rows > 0, columns > 0 else { return }
        let trans = transposed ? Transpose.transposed : Transpose.none
        T.gemv(trans.cblas, blasInt(rows), blasInt(columns), alpha, a, blasInt(lda), x, 0, y)
    }

    /// `y ← alpha · op(A) · x + beta · y`.
    public static func gemv<T: BLASScalar>(
        _ a: Matrix<T>, transA: Transpose = .none, _ x: [T], alpha: T = 1, beta: T = 0, into y: inout [T]
    ) {
        let (outCount, inCount) = transA == .none ? (a.rows, a.columns) : (a.columns, a.rows)
        precondition(x.count == inCount, "gemv: x has \(x.count) elements, expected \(inCount)")
        precondition(y.count == outCount, "gemv: y has \(y.count) elements, expected \(outCount)")
        guard a.rows > 0, a.columns > 0 else {
            for i in y.indices { y[i] *= beta }
            return
        }
        a.elements.withUnsafeBufferPointer { pa in
            x.withUnsafeBufferPointer { px in
                y.withUnsafeMutableBufferPointer { py in
                    T.gemv(
                        transA.cblas, blasInt(a.rows), blasInt(a.columns), alpha, pa.baseAddress!,
                        blasInt(a.columns), px.baseAddress!, beta, py.baseAddress!)
                }
            }
        }
    }

    /// The number of OpenBLAS worker threads. Starts from `OPENBLAS_NUM_THREADS` (or the core count);
    /// setting it changes every later BLAS call in the process.
    public static var threadCount: Int {
        get { Int(openblas_get_num_threads()) }
        set {
            precondition(newValue >= 1, "BLAS thread count must be at least 1")
            openblas_set_num_threads(blasInt(newValue))
            // Setting the count (re)starts the worker threads, which then spin; one thread needs none.
            if newValue == 1 { stopIdleThreads() }
        }
    }

    /// Stops the BLAS worker threads until the next threaded call starts them again. OpenBLAS starts
    /// them when the library loads and lets them spin on `sched_yield` for about 0.1 s waiting for
    /// work; a command that converts files, and uses no BLAS, would lose a core to them.
    public static func stopIdleThreads() {
        blas_thread_shutdown_()
    }

    /// Runs `body` with the BLAS thread count set to `count`, restoring the previous count after.
    public static func withThreadCount<R>(_ count: Int, _ body: () throws -> R) rethrows -> R {
        let previous = threadCount
        threadCount = count
        defer { threadCount = previous }
        return try body()
    }
}

/// BLAS and LAPACK take 32-bit integers here (Debian's OpenBLAS is LP64); overflow must trap, not wrap.

func blasInt(_ value: Int) -> Int32 {
    guard let converted = Int32(exactly: value) else {
        preconditionFailure("dimension \(value) does not fit the 32-bit BLAS interface")
    }
    return converted
}

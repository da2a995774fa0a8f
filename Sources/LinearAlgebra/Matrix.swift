/// A dense row-major matrix. Element `(r, c)` lives at `elements[r * columns + c]`.
///
/// The layout is part of the type's contract so that every BLAS/LAPACK call in this module can
/// pass `CblasRowMajor`/`LAPACK_ROW_MAJOR` without transposition bugs.
public struct Matrix<Scalar: BLASScalar>: Equatable, Sendable {
    public let rows: Int
    public let columns: Int
    public var elements: [Scalar]

    public init(rows: Int, columns: Int, repeating value: Scalar = 0) {
        precondition(rows >= 0 && columns >= 0, "matrix dimensions must be non-negative")
        self.rows = rows
        self.columns = columns
        self.elements = Array(repeating: value, count: rows * columns)
    }

    public init(rows: Int, columns: Int, elements: [Scalar]) {
        precondition(elements.count == rows * columns, "expected \(rows * columns) elements, got \(elements.count)")
        self.rows = rows
        self.columns = columns
        self.elements = elements
    }

    /// Builds a matrix from a function of `(row, column)`.
    public init(rows: Int, columns: Int, _ entry: (Int, Int) -> Scalar) {
        var elements = [Scalar]()
        elements.reserveCapacity(rows * columns)
        for r in 0..<rows {
            for c in 0..<columns { elements.append(entry(r, c)) }
        }
        self.init(rows: rows, columns: columns, elements: elements)
    }

    public static func identity(_ n: Int) -> Matrix {
        Matrix(rows: n, columns: n) { r, c in r == c ? 1 : 0 }
    }

    public subscript(row: Int, column: Int) -> Scalar {
        get { elements[row * columns + column] }
        set { elements[row * columns + column] = newValue }
    }

    public func transposed() -> Matrix {
        Matrix(rows: columns, columns: rows) { r, c in self[c, r] }
    }

    /// The Kronecker product `self ⊗ other`.
    public func kronecker(_ other: Matrix) -> Matrix {
        Matrix(rows: rows * other.rows, columns: columns * other.columns) { r, c in
            self[r / other.rows, c / other.columns] * other[r % other.rows, c % other.columns]
        }
    }

    /// The largest absolute entry of `self - other` (both must have the same shape).
    public func maxAbsDifference(_ other: Matrix) -> Scalar {
        precondition(rows == other.rows && columns == other.columns, "shape mismatch")
        var worst: Scalar = 0
        for i in elements.indices { worst = max(worst, abs(elements[i] - other.elements[i])) }
        return worst
    }

    /// Converts every entry to another scalar type.
    public func converted<Other: BLASScalar>(to _: Other.Type = Other.self) -> Matrix<Other> {
        Matrix<Other>(rows: rows, columns: columns, elements: elements.map { Other($0) })
    }
}

extension Matrix {
    /// `self · other` through BLAS.
    public static func * (lhs: Matrix, rhs: Matrix) -> Matrix {
        precondition(
            lhs.columns == rhs.rows, "cannot multiply \(lhs.rows)×\(lhs.columns) by \(rhs.rows)×\(rhs.columns)")
        var result = Matrix(rows: lhs.rows, columns: rhs.columns)
        BLAS.gemm(lhs, rhs, into: &result)
        return result
    }
}

/// Walsh–Hadamard matrices of order n = K·2^m and an in-place fast transform.
///
/// The matrix of order K·2^m is `had_K ⊗ H_{2^m}`, where `H_{2^m}` is Sylvester's natural-order
/// matrix (H₂ₙ = [[H, H], [H, −H]]) and `had_K` a fixed base matrix. The fast transform applies the
/// Sylvester butterflies along the contiguous 2^m axis and then mixes the K axis with `had_K`, so it
/// equals the dense product exactly. Both are unnormalised: divide by √n for an orthogonal map.
public enum Hadamard {
    /// The base orders K (besides 1) this library can build.
    public static let supportedBaseOrders: [Int] = HadamardConstruction.recipes.keys.sorted()

    /// Splits `n` into `K · 2^m` with the largest supported base K, or nil when no split exists.
    public static func factorization(of n: Int) -> (base: Int, powerOfTwo: Int)? {
        guard n > 0 else { return nil }
        for base in ([1] + supportedBaseOrders).reversed() where n % base == 0 {
            let rest = n / base
            if rest & (rest - 1) == 0 { return (base, rest) }
        }
        return nil
    }

    /// Whether a Hadamard matrix of order `n` is available.
    public static func isSupported(_ n: Int) -> Bool { factorization(of: n) != nil }

    /// The ±1 base matrix of order `k` (row-major), as used by the transform.
    public static func baseMatrix(order k: Int) throws -> Matrix<Float> {
        guard let entries = HadamardConstruction.matrix(order: k) else {
            throw LinearAlgebraError.unsupportedHadamardOrder(k, supportedBases: [1] + supportedBaseOrders)
        }
        return Matrix(rows: k, columns: k, elements: entries.map { Float($0) })
    }

    /// The dense unnormalised Hadamard matrix of order `n`.
    public static func matrix<T: BLASScalar>(order n: Int, as _: T.Type = T.self) throws -> Matrix<T> {
        guard let (k, pow2) = factorization(of: n) else {
            throw LinearAlgebraError.unsupportedHadamardOrder(n, supportedBases: [1] + supportedBaseOrders)
        }
        let base = try baseMatrix(order: k).converted(to: T.self)
        let sylvester = Matrix<T>(rows: pow2, columns: pow2) { r, c in
            (r & c).nonzeroBitCount % 2 == 0 ? 1 : -1
        }
        return base.kronecker(sylvester)
    }

    /// Applies the unnormalised transform of order `n` in place to each of the `vectors.count / n`
    /// contiguous vectors in `vectors`, then multiplies by `scale` (pass `1 / √n` to normalise).
    public static func transform(
        _ vectors: UnsafeMutableBufferPointer<Float>, order n: Int, scale: Float = 1
    ) throws {
        try HadamardPlan(order: n).apply(to: vectors, scale: scale)
    }
}

/// A prepared fast transform of one order: reuse it across calls to skip building the base matrix.
public struct HadamardPlan: Sendable {
    public let order: Int
    public let base: Int
    public let powerOfTwo: Int
    /// The ±1 base matrix `had_K`, row-major (`base × base`).
    public let baseEntries: [Float]

    public init(order n: Int) throws {
        guard let (k, pow2) = Hadamard.factorization(of: n) else {
            throw LinearAlgebraError.unsupportedHadamardOrder(n, supportedBases: [1] + Hadamard.supportedBaseOrders)
        }
        order = n
        base = k
        powerOfTwo = pow2
        baseEntries = try Hadamard.baseMatrix(order: k).elements
    }

    /// Transforms every contiguous length-`order` vector of `vectors` in place.
    public func apply(to vectors: UnsafeMutableBufferPointer<Float>, scale: Float = 1) throws {
        guard vectors.count % order == 0 else {
            throw LinearAlgebraError.shapeMismatch(
                routine: "hadamard", detail: "\(vectors.count) values are not a whole number of length-\(order) vectors"
            )
        }
        guard let start = vectors.baseAddress else { return }
        let mixed = UnsafeMutablePointer<Float>.allocate(capacity: base > 1 ? order : 0)
        defer { mixed.deallocate() }
        for vectorStart in stride(from: 0, to: vectors.count, by: order) {
            let x = start + vectorStart
            for block in 0..<base { butterflies(x + block * powerOfTwo) }
            if base > 1 { mixBaseAxis(x, scratch: mixed) }
            if scale != 1 {
                for i in 0..<order { x[i] *= scale }
            }
        }
    }

    /// The butterflies of a length-2^m transform. Each stage runs as whole spans of `half`
    /// contiguous values (vectorised when `half` allows); every value sees the same additions in the
    /// same order as the textbook loop.
    private func butterflies(_ x: UnsafeMutablePointer<Float>) {
        var half = 1
        while half < powerOfTwo {
            for blockStart in stride(from: 0, to: powerOfTwo, by: 2 * half) {
                let (low, high) = (x + blockStart, x + blockStart + half)
                for i in 0..<half {
                    let (a, b) = (low[i], high[i])
                    low[i] = a + b
                    high[i] = a - b
                }
            }
            half *= 2
        }
    }

    /// y[a, b] = Σ_c had_K[a, c] · x[c, b] for every column b of the K×2^m view, a whole row of
    /// columns at a time (contiguous, so vectorised); each sum runs over c in order from 0, as the
    /// column-at-a-time loop adds them, so the results are the same bits.
    private func mixBaseAxis(_ x: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        let columns = powerOfTwo
        baseEntries.withUnsafeBufferPointer { entries in
            for row in 0..<base {
                let target = scratch + row * columns
                target.initialize(repeating: 0, count: columns)
                for c in 0..<base {
                    let (weight, source) = (entries[row * base + c], x + c * columns)
                    for column in 0..<columns { target[column] += weight * source[column] }
                }
            }
        }
        x.update(from: scratch, count: order)
    }
}

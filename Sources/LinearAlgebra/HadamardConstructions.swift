/// Constructions of the base Hadamard matrices of order K that `Hadamard` combines with Sylvester
/// blocks of order 2^m. Every matrix has entries ±1 and satisfies H·Hᵀ = K·I (checked by the tests).
enum HadamardConstruction {
    /// How each supported base order is built.
    static let recipes: [Int: Recipe] = [
        12: .paleyI(q: 11),
        20: .paleyI(q: 19),
        28: .paleyII(q: 13),
        36: .paleyII(q: 17),
        40: .doubled(20),
        44: .paleyI(q: 43),
        52: .paleyII(q: 25),
        60: .paleyI(q: 59),
        108: .paleyI(q: 107),
        140: .paleyI(q: 139),
        156: .williamson(williamson39),
        172: .williamson(williamson43),
    ]

    enum Recipe {
        /// Paley I: order q + 1 for a prime power q ≡ 3 (mod 4).
        case paleyI(q: Int)
        /// Paley II: order 2(q + 1) for a prime power q ≡ 1 (mod 4).
        case paleyII(q: Int)
        /// Sylvester doubling [[H, H], [H, −H]] of a smaller base.
        case doubled(Int)
        /// The Williamson array over four symmetric circulants, given by their first rows.
        case williamson([String])
    }

    /// Williamson matrices of order 39 (S. London, thesis 2013), first rows of A, B, C, D.
    static let williamson39 = [
        "+++--+-+-----+--++----++--+-----+-+--++",
        "+++--++-+---+-+--+----+--+-+---+-++--++",
        "++++---+--++----+-+--+-+----++--+---+++",
        "+---++-+-+-----+++-++-+++-----+-+-++---",
    ]

    /// Williamson matrices of order 43 (Baumert and Hall; M. Hall, Combinatorial Theory, 1983).
    static let williamson43 = [
        "++---++++-+--+--++--------++--+--+-++++---+",
        "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
        "++-++++++----+-+--++-++-++--+-+----++++++-+",
        "+---++--++++-+-+++-++--++-+++-+-++++--++---",
    ]

    /// The ±1 entries of the base matrix of order `k`, row-major, or nil for an unknown order.
    static func matrix(order k: Int) -> [Int8]? {
        if k == 1 { return [1] }
        guard let recipe = recipes[k] else { return nil }
        switch recipe {
        case .paleyI(let q): return paleyI(q: q)
        case .paleyII(let q): return paleyII(q: q)
        case .doubled(let base):
            guard let h = matrix(order: base) else { return nil }
            return doubled(h, order: base)
        case .williamson(let rows): return williamson(rows)
        }
    }

    // MARK: - Paley

    /// The quadratic character table χ(a_i − a_j) of GF(q): 0 on the diagonal, ±1 elsewhere.
    private static func jacobsthal(q: Int) -> [Int8] {
        let field = SmallField(order: q)
        var table = [Int8](repeating: 0, count: q * q)
        for i in 0..<q {
            for j in 0..<q where i != j {
                table[i * q + j] = field.isSquare(field.subtract(i, j)) ? 1 : -1
            }
        }
        return table
    }

    private static func paleyI(q: Int) -> [Int8] {
        // H = I + S with S = [[0, 1ᵀ], [−1, Q]]; Q is antisymmetric because q ≡ 3 (mod 4).
        let jac = jacobsthal(q: q)
        let n = q + 1
        var h = [Int8](repeating: 0, count: n * n)
        for r in 0..<n {
            for c in 0..<n {
                let s: Int8 =
                    r == 0
                    ? (c == 0 ? 0 : 1)
                    : c == 0 ? -1 : jac[(r - 1) * q + (c - 1)]
                h[r * n + c] = s + (r == c ? 1 : 0)
            }
        }
        return h
    }

    private static func paleyII(q: Int) -> [Int8] {
        // C = [[0, 1ᵀ], [1, Q]] is symmetric for q ≡ 1 (mod 4);
        // H = C ⊗ [[1, −1], [−1, −1]] + I ⊗ [[1, 1], [1, −1]].
        let jac = jacobsthal(q: q)
        let m = q + 1
        let n = 2 * m
        let offDiagonal: [Int8] = [1, -1, -1, -1]
        let diagonal: [Int8] = [1, 1, 1, -1]
        var h = [Int8](repeating: 0, count: n * n)
        for r in 0..<m {
            for c in 0..<m {
                let entry: Int8 = r == 0 ? (c == 0 ? 0 : 1) : c == 0 ? 1 : jac[(r - 1) * q + (c - 1)]
                for br in 0..<2 {
                    for bc in 0..<2 {
                        let value = r == c ? diagonal[br * 2 + bc] : entry * offDiagonal[br * 2 + bc]
                        h[(2 * r + br) * n + 2 * c + bc] = value
                    }
                }
            }
        }
        return h
    }

    // MARK: - Doubling and Williamson

    private static func doubled(_ h: [Int8], order k: Int) -> [Int8] {
        let n = 2 * k
        var out = [Int8](repeating: 0, count: n * n)
        for r in 0..<n {
            for c in 0..<n {
                let sign: Int8 = (r >= k && c >= k) ? -1 : 1
                out[r * n + c] = sign * h[(r % k) * k + (c % k)]
            }
        }
        return out
    }

    /// H = [[A, B, C, D], [−B, A, −D, C], [−C, D, A, −B], [−D, −C, B, A]] with circulant blocks.
    private static func williamson(_ firstRows: [String]) -> [Int8] {
        let rows = firstRows.map { row in row.map { $0 == "+" ? Int8(1) : Int8(-1) } }
        let n = rows[0].count
        let layout: [[(block: Int, sign: Int8)]] = [
            [(0, 1), (1, 1), (2, 1), (3, 1)],
            [(1, -1), (0, 1), (3, -1), (2, 1)],
            [(2, -1), (3, 1), (0, 1), (1, -1)],
            [(3, -1), (2, -1), (1, 1), (0, 1)],
        ]
        let size = 4 * n
        var h = [Int8](repeating: 0, count: size * size)
        for br in 0..<4 {
            for bc in 0..<4 {
                let (block, sign) = layout[br][bc]
                for i in 0..<n {
                    for j in 0..<n {
                        h[(br * n + i) * size + bc * n + j] = sign * rows[block][(j - i + n) % n]
                    }
                }
            }
        }
        return h
    }
}

/// GF(p) or GF(p²) for the small orders Paley constructions need, with elements numbered
/// `a + b·p` for `a + b·α`, where α² is a fixed non-residue mod p.
struct SmallField {
    let p: Int
    let isExtension: Bool
    private let squares: Set<Int>

    init(order q: Int) {
        let prime = (2...q).first { q % $0 == 0 }!
        precondition(prime == q || prime * prime == q, "GF(\(q)) is not supported")
        p = prime
        isExtension = prime != q
        let nonResidue = (2..<max(prime, 3)).first { x in
            (1..<prime).allSatisfy { ($0 * $0) % prime != x % prime }
        }
        var squares = Set<Int>()
        for element in 1..<q {
            let (a, b) = (element % prime, element / prime)
            // (a + bα)² = a² + b²·r + 2ab·α
            let real = (a * a + b * b * (nonResidue ?? 0)) % prime
            let imaginary = (2 * a * b) % prime
            squares.insert(real + imaginary * prime)
        }
        self.squares = squares
    }

    func subtract(_ x: Int, _ y: Int) -> Int {
        let real = ((x % p) - (y % p) + p) % p
        let imaginary = ((x / p) - (y / p) + p) % p
        return real + imaginary * p
    }

    func isSquare(_ x: Int) -> Bool { squares.contains(x) }
}

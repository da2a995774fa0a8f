import LatheCore
import LinearAlgebra

/// How the rotation inside each subspace is drawn.
enum RotationKind: String, Codable, Sendable {
    /// Haar-random orthogonal (QR of a Gaussian matrix), ResQ's choice.
    case random
    /// The normalised Walsh–Hadamard matrix (QuaRot's deterministic variant).
    case hadamard
    /// The Hadamard matrix with random signs on its rows (QuaRot's randomized Hadamard).
    case randomizedHadamard = "randomized-hadamard"

    /// An `n × n` orthogonal matrix, row-major, drawn from `generator` when random.
    func matrix(_ n: Int, using generator: inout SeededGenerator) throws -> [Double] {
        guard n > 0 else { return [] }
        switch self {
        case .random:
            return try Matrix<Double>.randomOrthogonal(n, using: &generator).elements
        case .hadamard, .randomizedHadamard:
            let scale = 1 / Double(n).squareRoot()
            var h = try Hadamard.matrix(order: n, as: Double.self).elements.map { $0 * scale }
            if self == .randomizedHadamard {
                // diag(s)·H: flips whole rows, still orthogonal.
                for row in 0..<n where generator.next() & 1 == 1 {
                    for column in 0..<n { h[row * n + column] = -h[row * n + column] }
                }
            }
            return h
        }
    }

    /// `blockdiag(R(n − high), R(high))`: rotations inside the low and the high subspace.
    func blockDiagonal(_ n: Int, high: Int, using generator: inout SeededGenerator) throws -> [Double] {
        let low = n - high
        let lowBlock = try matrix(low, using: &generator)
        let highBlock = try matrix(high, using: &generator)
        var result = [Double](repeating: 0, count: n * n)
        for r in 0..<low {
            for c in 0..<low { result[r * n + c] = lowBlock[r * low + c] }
        }
        for r in 0..<high {
            for c in 0..<high { result[(low + r) * n + low + c] = highBlock[r * high + c] }
        }
        return result
    }
}

/// Dense products on row-major buffers, in Float64.
enum Dense {
    /// `a (m×k) · b (k×n)`, or `aᵀ · b` with `a` stored `k×m`: LinearAlgebra's checked GEMM on
    /// plain row-major arrays.
    static func multiply(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int, transA: Bool = false) -> [Double] {
        var c = Matrix<Double>(rows: m, columns: n)
        BLAS.gemm(
            Matrix(rows: transA ? k : m, columns: transA ? m : k, elements: a), transA: transA ? .transposed : .none,
            Matrix(rows: k, columns: n, elements: b), into: &c)
        return c.elements
    }

    /// `Uᵀ M U` and `Uᵀ s` for statistics of an activation that becomes `x · U`.
    static func transform(_ moments: inout ActivationMoments, by u: [Double]) {
        let n = moments.width
        let mu = multiply(moments.secondMoment, u, m: n, k: n, n: n)
        moments.secondMoment = multiply(u, mu, m: n, k: n, n: n, transA: true)
        moments.sum = multiply(u, moments.sum, m: n, k: n, n: 1, transA: true)
    }
}

extension ModelGraph {
    /// `W ← W · U` for a `[rows, n]` weight (its input side).
    mutating func rotateInputs(_ name: String, by u: [Double], n: Int) throws {
        let (rows, columns) = try matrixShape(name)
        guard columns == n else {
            throw LatheError.inTensor(name, .invalidShape([rows, columns], reason: "expected \(n) input columns"))
        }
        var w = try floats(name)
        // In row blocks: a 49152-row embedding never exists in Float64 all at once.
        let block = 4096
        for first in stride(from: 0, to: rows, by: block) {
            let count = min(block, rows - first)
            let part = w[(first * n)..<((first + count) * n)].map(Double.init)
            let rotated = Dense.multiply(part, u, m: count, k: n, n: n)
            for i in 0..<(count * n) { w[first * n + i] = Float(rotated[i]) }
        }
        try setFloats(name, w)
    }

    /// `W ← Uᵀ · W` for a `[n, columns]` weight (its output side).
    mutating func rotateOutputs(_ name: String, by u: [Double], n: Int) throws {
        let (rows, columns) = try matrixShape(name)
        guard rows == n else {
            throw LatheError.inTensor(name, .invalidShape([rows, columns], reason: "expected \(n) output rows"))
        }
        let w = try floats(name).map(Double.init)
        try setFloats(name, Dense.multiply(u, w, m: n, k: n, n: columns, transA: true).map(Float.init))
    }
}

import Foundation
import LatheCore
import LinearAlgebra

/// `pca-basis`: the eigenbases of the activations' uncentred second moments (ResQ's projections),
/// from the calibration statistics, in Float64, eigenvalues ascending so the high-variance
/// subspace is the tail:
/// - U_A's basis: one `hidden × hidden` basis from the attention and MLP inputs of all layers,
///   each layer and block weighted equally;
/// - U_B's: one `head_dim × head_dim` basis per layer and KV head from the value projection's output;
/// - U_C's: one per layer from the keys after RoPE, summed over KV heads.
/// The high-precision rank (`rankFraction` of each dimension) is recorded for the quantizers.
public struct PCABasisPass: ModelPass {
    public struct Options: Codable, Sendable {
        /// Share of each space kept at high precision (default 1/8: 72 of 576, 8 of 64).
        public var rankFraction: Double?
        /// Which bases to compute (all by default); the rotation uses a random basis for the others.
        public var residual: Bool?
        public var values: Bool?
        public var keys: Bool?
    }

    public static let passID = "pca-basis"
    public static let summary = "PCA bases of the residual, value and key activations from calibration (ResQ)"

    let rankFraction: Double
    let residual: Bool
    let values: Bool
    let keys: Bool

    public init(options: Options) throws {
        rankFraction = options.rankFraction ?? 0.125
        guard (0...1).contains(rankFraction) else {
            throw LatheError.invalidValue(
                field: "options of pass 'pca-basis': rankFraction", value: "\(rankFraction)", expected: "0 to 1")
        }
        residual = options.residual ?? true
        values = options.values ?? true
        keys = options.keys ?? true
    }

    /// The spectra a report shows, largest first: the residual stream's, and the values' and keys'
    /// averaged over layers (and heads).
    static func summary(_ spectra: [String: [Double]]) -> [String: [Double]] {
        var result: [String: [Double]] = [:]
        if let residual = spectra["residual"] { result["residual"] = residual.sorted(by: >) }
        for site in ["values", "keys"] {
            // Summed in key order: the same spectra give the same bytes on every run.
            let members = spectra.filter { $0.key.hasPrefix(site + ".") }.sorted { $0.key < $1.key }
                .map { $0.value.sorted(by: >) }
            guard let width = members.first?.count, members.allSatisfy({ $0.count == width }) else { continue }
            result[site] = (0..<width).map { i in members.reduce(0) { $0 + $1[i] } / Double(members.count) }
        }
        return result
    }

    func layout(_ config: LlamaConfig) -> SubspaceLayout {
        SubspaceLayout(
            hiddenHigh: Int(rankFraction * Double(config.hiddenSize)),
            headHigh: Int(rankFraction * Double(config.headDim)), basis: "pca")
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        let layout = layout(config)
        let hidden = config.hiddenSize
        var plan = PassPlan(
            requires: [CalibrationArtifact.name], produces: [SubspaceBasesArtifact.name],
            notes: [
                "high-precision rank: \(layout.hiddenHigh) of \(hidden) (hidden), \(layout.headHigh) of \(config.headDim) (per head)",
                "bases: "
                    + [residual ? "residual" : nil, values ? "values" : nil, keys ? "keys" : nil].compactMap { $0 }
                    .joined(separator: ", "),
            ],
            peakBytes: 3 * hidden * hidden * 8)
        try layout.store(in: &plan.recordedMetadata)
        return plan
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        let moments = try context.require(CalibrationArtifact.self, by: Self.passID)
        func statistic(_ key: String) throws -> ActivationMoments {
            guard let m = moments[key] else {
                throw LatheError.missingField(key, in: "the calibration statistics (needed by pass 'pca-basis')")
            }
            return m
        }
        let (hidden, hd, layers) = (config.hiddenSize, config.headDim, config.layerCount)
        var spectra: [String: [Double]] = [:]

        var residualBasis: [Double]?
        if residual {
            var c = [Double](repeating: 0, count: hidden * hidden)
            for layer in 0..<layers {
                for site in ["attn_input", "mlp_input"] {
                    let m = try statistic("\(site).\(layer)").meanSecondMoment
                    for i in c.indices { c[i] += m[i] / Double(2 * layers) }
                }
            }
            let (vectors, eigenvalues) = try Self.eigenbasis(c, n: hidden)
            residualBasis = vectors
            spectra["residual"] = eigenvalues
        }
        var valueBases: [[[Double]]]?
        if values {
            valueBases = try (0..<layers).map { layer in
                try (0..<config.kvHeadCount).map { head in
                    let key = "v_proj_output.\(layer).head\(head)"
                    let (vectors, eigenvalues) = try Self.eigenbasis(statistic(key).meanSecondMoment, n: hd)
                    spectra["values.\(layer).head\(head)"] = eigenvalues
                    return vectors
                }
            }
        }
        var keyBases: [[Double]]?
        if keys {
            keyBases = try (0..<layers).map { layer in
                var c = [Double](repeating: 0, count: hd * hd)
                for head in 0..<config.kvHeadCount {
                    let m = try statistic("k_rope.\(layer).head\(head)").meanSecondMoment
                    for i in c.indices { c[i] += m[i] / Double(config.kvHeadCount) }
                }
                let (vectors, eigenvalues) = try Self.eigenbasis(c, n: hd)
                spectra["keys.\(layer)"] = eigenvalues
                return vectors
            }
        }
        var layout = layout(config)
        layout.spectra = Self.summary(spectra)
        context[SubspaceBasesArtifact.self] = SubspaceBases(
            residual: residualBasis, values: valueBases, keys: keyBases, spectra: spectra, layout: layout)
        try layout.store(in: &graph.metadata)
        context.diagnostics.info(
            "pca-basis: high-precision subspace keeps \(Self.share(spectra["residual"], top: layout.hiddenHigh)) of the residual variance"
        )
    }

    /// Eigenvectors (as columns, row-major `n × n`) and eigenvalues of a symmetric matrix, ascending.
    /// A damping of 1% of the mean diagonal shifts every eigenvalue alike: it only guards the solver.
    static func eigenbasis(_ c: [Double], n: Int) throws -> (vectors: [Double], values: [Double]) {
        var damped = c
        // Use the upper triangle (what the solver reads) for both halves.
        for i in 0..<n {
            for j in 0..<i { damped[i * n + j] = c[j * n + i] }
        }
        let mean = (0..<n).reduce(0.0) { $0 + c[$1 * n + $1] } / Double(n)
        for i in 0..<n { damped[i * n + i] += 0.01 * mean }
        let eigen = try Matrix(rows: n, columns: n, elements: damped).symmetricEigendecomposition()
        return (eigen.vectors.elements, eigen.values.map { $0 - 0.01 * mean })
    }

    static func share(_ spectrum: [Double]?, top: Int) -> String {
        guard let spectrum, !spectrum.isEmpty else { return "n/a" }
        let total = spectrum.reduce(0, +)
        let kept = spectrum.suffix(top).reduce(0, +)
        return String(format: "%.1f%%", total > 0 ? 100 * kept / total : 0)
    }
}

import Foundation
import LatheCore
import LinearAlgebra

/// How closely a candidate model follows its base, token by token.
public struct VerificationResult: Sendable {
    public struct Distribution: Sendable {
        public var mean: Double
        public var median: Double
        public var p99: Double
        public var max: Double
        /// Counts per bin: the first bin holds values below `histogramEdges[1]` (zeros included), bin i
        /// holds [edges[i], edges[i+1]), the last everything from its edge up.
        public var histogram: [Int] = []
    }

    /// Bin edges of `Distribution.histogram`: 0, then 10^-6 … 10^2 in quarter decades.
    public static let histogramEdges: [Double] = [0] + (0...32).map { pow(10, -6 + Double($0) / 4) }

    /// The q-quantile of ascending `values`, interpolated between the two nearest ranks (numpy's
    /// default), so the median of an even count is the mean of its middle pair; 0 when empty.
    static func quantile(_ q: Double, ofSorted values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let position = q * Double(values.count - 1)
        let low = Int(position)
        let high = min(low + 1, values.count - 1)
        // On a rank exactly, that value (an infinite neighbour would make 0 · ∞ a NaN).
        guard position > Double(low) else { return values[low] }
        return values[low] + (position - Double(low)) * (values[high] - values[low])
    }

    /// KL(base ‖ candidate) per scored token.
    public var kl: Distribution
    /// Fraction of scored tokens where both models' most likely next token is the same.
    public var topOneAgreement: Double
    public var basePerplexity: Double
    public var candidatePerplexity: Double
    /// Relative RMS error ‖h_c − h_b‖ / ‖h_b‖ of the residual stream after each layer, over every
    /// position of each chunk (not only the scored ones: a layer's error is there at every position).
    public var layerErrors: [Double]
    public var scoredTokens: Int
    public var chunks: Int
    public var seconds: Double

    public var perplexityRatio: Double { candidatePerplexity / basePerplexity }
}

public enum Verifier {
    /// Runs both models side by side on the same chunks (so base logits are never stored) and compares
    /// their next-token distributions and hidden states.
    public static func compare(
        base: LlamaSession, candidate: LlamaSession, tokens: [Int], context: Int, maxChunks: Int?,
        protocol scoring: PerplexityProtocol = .llama, decode: Bool = false, windowStart: Int? = nil,
        diagnostics: Diagnostics = .silent
    ) throws -> VerificationResult {
        try compare(
            base: base, candidates: [candidate], tokens: tokens, context: context, maxChunks: maxChunks,
            protocol: scoring, decode: decode, windowStart: windowStart, diagnostics: diagnostics)[0]
    }

    /// Several candidates against one base: the base runs once per chunk, and each candidate is
    /// compared with it in turn (only one chunk's base distributions are held at a time). With
    /// `decode` each candidate reads the chunk one token at a time, as generation runs it (decoding
    /// kernels, the KV cache read in place), and its logits come one row at a time; the base always
    /// runs the chunk as one prefill. `windowStart` is as in `Perplexity.evaluate`.
    public static func compare(
        base: LlamaSession, candidates: [LlamaSession], tokens: [Int], context: Int, maxChunks: Int?,
        protocol scoring: PerplexityProtocol = .llama, decode: Bool = false, windowStart: Int? = nil,
        diagnostics: Diagnostics = .silent
    ) throws -> [VerificationResult] {
        let bc = base.weights.config
        for candidate in candidates {
            let cc = candidate.weights.config
            guard bc.vocabSize == cc.vocabSize, bc.hiddenSize == cc.hiddenSize, bc.layerCount == cc.layerCount else {
                throw LatheError.invalidValue(
                    field: "candidate",
                    value: "vocab \(cc.vocabSize), hidden \(cc.hiddenSize), \(cc.layerCount) layers",
                    expected: "the base's vocab \(bc.vocabSize), hidden \(bc.hiddenSize), \(bc.layerCount) layers")
            }
        }
        try requireEnoughTokens(tokens.count, context: context, scoring: scoring)
        let available = tokens.count / context
        let chunks = min(available, maxChunks ?? available)
        let vocab = bc.vocabSize
        var tallies = candidates.map { _ in Tally(layers: bc.layerCount) }
        var baseNLL = LikelihoodAccumulator()
        let started = Date()
        for chunk in 0..<chunks {
            let window = evaluationWindow(tokens, chunk: chunk, context: context, start: windowStart)
            var baseStates: [[Float]] = []
            base.reset()
            let baseRotation = base.weights.residualRotation
            let baseHidden = try base.forward(window) { _, hidden in
                baseStates.append(originalBasis(hidden, rotation: baseRotation, width: bc.hiddenSize))
            }
            let rows = scoring.scoredRows(context: context)
            let baseLogits = base.logits(baseHidden, rows: rows)
            let baseLog: [[Double]] = baseLogits.withUnsafeBufferPointer { bl in
                (0..<rows.count).map { offset in
                    logSoftmax(UnsafeBufferPointer(rebasing: bl[(offset * vocab)..<((offset + 1) * vocab)]))
                }
            }
            for (offset, row) in rows.enumerated() { baseNLL.add(-baseLog[offset][window[row + 1]]) }
            guard baseNLL.sum.isFinite else {
                throw nonFiniteLogits("the base model's output", at: "chunk \(chunk + 1)")
            }
            for (index, candidate) in candidates.enumerated() {
                candidate.reset()
                let rotation = candidate.weights.residualRotation
                /// Hidden states of the window's positions from `first` on, against the base's.
                func compareStates(layer: Int, hidden: [Float], first: Int) {
                    let hidden = originalBasis(hidden, rotation: rotation, width: bc.hiddenSize)
                    for (a, b) in zip(baseStates[layer][(first * bc.hiddenSize)...], hidden) {
                        tallies[index].layerDifference[layer] += Double(b - a) * Double(b - a)
                        tallies[index].layerNorm[layer] += Double(a) * Double(a)
                    }
                }
                var candidateLogits: [Float] = []
                if decode {
                    candidateLogits.reserveCapacity(rows.count * vocab)
                    for (position, token) in window.enumerated() {
                        let hidden = try candidate.forward([token]) { layer, hidden in
                            compareStates(layer: layer, hidden: hidden, first: position)
                        }
                        if rows.contains(position) { candidateLogits += candidate.logits(hidden, rows: 0..<1) }
                    }
                } else {
                    let candidateHidden = try candidate.forward(window) { layer, hidden in
                        compareStates(layer: layer, hidden: hidden, first: 0)
                    }
                    candidateLogits = candidate.logits(candidateHidden, rows: rows)
                }
                var nonFinite: Int?
                candidateLogits.withUnsafeBufferPointer { cl in
                    for (offset, row) in rows.enumerated() {
                        let p = baseLog[offset]
                        let q = logSoftmax(UnsafeBufferPointer(rebasing: cl[(offset * vocab)..<((offset + 1) * vocab)]))
                        var kl = 0.0
                        var (bestP, bestQ) = (0, 0)
                        for i in 0..<vocab {
                            kl += exp(p[i]) * (p[i] - q[i])
                            if p[i] > p[bestP] { bestP = i }
                            if q[i] > q[bestQ] { bestQ = i }
                        }
                        // max(0, NaN) would be 0: a broken candidate must not score as a perfect one.
                        if !kl.isFinite, nonFinite == nil { nonFinite = row }
                        tallies[index].kl.append(max(0, kl))
                        if bestP == bestQ { tallies[index].agreements += 1 }
                        tallies[index].nll.add(-q[window[row + 1]])
                    }
                }
                if let row = nonFinite {
                    throw nonFiniteLogits(
                        candidates.count > 1 ? "candidate \(index + 1)'s output" : "the candidate's output",
                        at: "chunk \(chunk + 1), position \(row)")
                }
            }
            let first = tallies[0].kl
            diagnostics.progress(
                .verifying, fraction: Double(chunk + 1) / Double(chunks),
                String(format: "chunk %d/%d: mean KL %.6f", chunk + 1, chunks, first.reduce(0, +) / Double(first.count))
            )
        }
        let seconds = Date().timeIntervalSince(started)
        return tallies.map { $0.result(basePerplexity: baseNLL.perplexity, chunks: chunks, seconds: seconds) }
    }

    /// Hidden states in the original model's basis: a model whose residual stream was rotated holds
    /// h·U, so h = (h·U)·Uᵀ. Per-layer errors are measured there, not between two different bases.
    static func originalBasis(_ hidden: [Float], rotation: [Float]?, width: Int) -> [Float] {
        guard let rotation, !hidden.isEmpty else { return hidden }
        var result = [Float](repeating: 0, count: hidden.count)
        hidden.withUnsafeBufferPointer { h in
            rotation.withUnsafeBufferPointer { u in
                result.withUnsafeMutableBufferPointer { out in
                    BLAS.gemm(
                        transB: .transposed, m: hidden.count / width, n: width, k: width, a: h.baseAddress!,
                        lda: width, b: u.baseAddress!, ldb: width, c: out.baseAddress!, ldc: width)
                }
            }
        }
        return result
    }

    /// One candidate's running comparison.
    struct Tally {
        var kl: [Double] = []
        var agreements = 0
        var nll = LikelihoodAccumulator()
        var layerDifference: [Double]
        var layerNorm: [Double]

        init(layers: Int) {
            layerDifference = [Double](repeating: 0, count: layers)
            layerNorm = layerDifference
        }

        func result(basePerplexity: Double, chunks: Int, seconds: Double) -> VerificationResult {
            let sorted = kl.sorted()
            func quantile(_ q: Double) -> Double { VerificationResult.quantile(q, ofSorted: sorted) }
            let edges = VerificationResult.histogramEdges
            var histogram = [Int](repeating: 0, count: edges.count)
            for value in kl {
                let bin = edges.lastIndex { $0 <= value } ?? 0
                histogram[bin] += 1
            }
            return VerificationResult(
                kl: .init(
                    mean: kl.reduce(0, +) / Double(max(kl.count, 1)), median: quantile(0.5), p99: quantile(0.99),
                    max: sorted.last ?? 0, histogram: histogram),
                topOneAgreement: Double(agreements) / Double(max(kl.count, 1)), basePerplexity: basePerplexity,
                candidatePerplexity: nll.perplexity,
                layerErrors: zip(layerDifference, layerNorm).map { $1 > 0 ? ($0 / $1).squareRoot() : $0.squareRoot() },
                scoredTokens: kl.count, chunks: chunks, seconds: seconds)
        }
    }
}

import Foundation
import LatheCore

/// How closely a candidate model follows its base, token by token.
public struct VerificationResult: Sendable {
    public struct Distribution: Sendable {
        public var mean: Double
        public var median: Double
        public var p99: Double
        public var max: Double
    }

    /// KL(base ‖ candidate) per scored token.
    public var kl: Distribution
    /// Fraction of scored tokens where both models' most likely next token is the same.
    public var topOneAgreement: Double
    public var basePerplexity: Double
    public var candidatePerplexity: Double
    /// Relative RMS error ‖h_c − h_b‖ / ‖h_b‖ of the residual stream after each layer, over all tokens.
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
        protocol scoring: PerplexityProtocol = .llama, diagnostics: Diagnostics = .silent
    ) throws -> VerificationResult {
        let (bc, cc) = (base.weights.config, candidate.weights.config)
        guard bc.vocabSize == cc.vocabSize, bc.hiddenSize == cc.hiddenSize, bc.layerCount == cc.layerCount else {
            throw LatheError.invalidValue(
                field: "candidate", value: "vocab \(cc.vocabSize), hidden \(cc.hiddenSize), \(cc.layerCount) layers",
                expected: "the base's vocab \(bc.vocabSize), hidden \(bc.hiddenSize), \(bc.layerCount) layers")
        }
        guard tokens.count >= 2 * context else {
            throw LatheError.invalidValue(
                field: "text", value: "\(tokens.count) tokens", expected: "at least \(2 * context) tokens")
        }
        let available = tokens.count / context
        let chunks = min(available, maxChunks ?? available)
        let vocab = bc.vocabSize
        var klValues: [Double] = []
        var agreements = 0
        var baseNLL = LikelihoodAccumulator()
        var candidateNLL = LikelihoodAccumulator()
        var layerDifference = [Double](repeating: 0, count: bc.layerCount)
        var layerNorm = [Double](repeating: 0, count: bc.layerCount)
        let started = Date()
        for chunk in 0..<chunks {
            let window = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
            var baseStates: [[Float]] = []
            base.reset()
            let baseHidden = try base.forward(window) { _, hidden in baseStates.append(hidden) }
            candidate.reset()
            let candidateHidden = try candidate.forward(window) { layer, hidden in
                for (a, b) in zip(baseStates[layer], hidden) {
                    layerDifference[layer] += Double(b - a) * Double(b - a)
                    layerNorm[layer] += Double(a) * Double(a)
                }
            }
            let rows = scoring.scoredRows(context: context)
            let baseLogits = base.logits(baseHidden, rows: rows)
            let candidateLogits = candidate.logits(candidateHidden, rows: rows)
            baseLogits.withUnsafeBufferPointer { bl in
                candidateLogits.withUnsafeBufferPointer { cl in
                    for (offset, row) in rows.enumerated() {
                        let slice = (offset * vocab)..<((offset + 1) * vocab)
                        let p = logSoftmax(UnsafeBufferPointer(rebasing: bl[slice]))
                        let q = logSoftmax(UnsafeBufferPointer(rebasing: cl[slice]))
                        var kl = 0.0
                        var (bestP, bestQ) = (0, 0)
                        for i in 0..<vocab {
                            kl += exp(p[i]) * (p[i] - q[i])
                            if p[i] > p[bestP] { bestP = i }
                            if q[i] > q[bestQ] { bestQ = i }
                        }
                        klValues.append(max(0, kl))
                        if bestP == bestQ { agreements += 1 }
                        baseNLL.add(-p[window[row + 1]])
                        candidateNLL.add(-q[window[row + 1]])
                    }
                }
            }
            diagnostics.progress(
                .verifying, fraction: Double(chunk + 1) / Double(chunks),
                String(
                    format: "chunk %d/%d: mean KL %.6f", chunk + 1, chunks,
                    klValues.reduce(0, +) / Double(klValues.count)))
        }
        let sorted = klValues.sorted()
        func quantile(_ q: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(q * Double(sorted.count - 1) + 0.5))]
        }
        return VerificationResult(
            kl: .init(
                mean: klValues.reduce(0, +) / Double(max(klValues.count, 1)), median: quantile(0.5),
                p99: quantile(0.99), max: sorted.last ?? 0),
            topOneAgreement: Double(agreements) / Double(max(klValues.count, 1)), basePerplexity: baseNLL.perplexity,
            candidatePerplexity: candidateNLL.perplexity,
            layerErrors: zip(layerDifference, layerNorm).map { $1 > 0 ? ($0 / $1).squareRoot() : $0.squareRoot() },
            scoredTokens: klValues.count, chunks: chunks, seconds: Date().timeIntervalSince(started))
    }
}

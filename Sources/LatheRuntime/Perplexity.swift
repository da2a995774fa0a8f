import Foundation
import LatheCore

/// How windows of text are scored.
public enum PerplexityProtocol: String, Sendable, CaseIterable {
    /// llama-perplexity: non-overlapping chunks of `context` tokens, each scored on its second half.
    case llama
    /// Every prediction of each chunk (the ResQ paper's protocol).
    case all

    /// The positions of a chunk whose next-token predictions are scored.
    func scoredRows(context: Int) -> Range<Int> {
        switch self {
        case .llama: (context / 2)..<(context - 1)
        case .all: 0..<(context - 1)
        }
    }
}

/// The result of a perplexity run.
public struct PerplexityResult: Sendable {
    public var perplexity: Double
    /// ± one standard error of the perplexity (from the spread of per-token log-likelihoods).
    public var standardError: Double
    public var scoredTokens: Int
    public var chunks: Int
    public var seconds: Double
    public var tokensPerSecond: Double
}

/// Accumulates per-token negative log-likelihoods.
struct LikelihoodAccumulator {
    var sum = 0.0
    var sumOfSquares = 0.0
    var count = 0

    mutating func add(_ nll: Double) {
        sum += nll
        sumOfSquares += nll * nll
        count += 1
    }

    var perplexity: Double { exp(sum / Double(max(count, 1))) }

    /// llama-perplexity's uncertainty: PPL · √(var(nll) / (n − 1)); NaN (JSON null) for a single
    /// token, where it is undefined rather than zero.
    var standardError: Double {
        guard count > 1 else { return .nan }
        let mean = sum / Double(count)
        let variance = max(0, sumOfSquares / Double(count) - mean * mean)
        return perplexity * (variance / Double(count - 1)).squareRoot()
    }
}

/// Log-probabilities of a logit row (computed in double for stability).
func logSoftmax(_ row: UnsafeBufferPointer<Float>) -> [Double] {
    var maximum = -Float.infinity
    for v in row { maximum = max(maximum, v) }
    var sum = 0.0
    for v in row { sum += exp(Double(v - maximum)) }
    let logSum = log(sum) + Double(maximum)
    return row.map { Double($0) - logSum }
}

/// Refuses a text too short for the protocol: llama-perplexity's two chunks, or one whole chunk
/// when every token is scored. Call it before making a session of `context` positions: a --ctx far
/// beyond the text would otherwise first allocate a cache that size.
public func requireEnoughTokens(_ count: Int, context: Int, scoring: PerplexityProtocol) throws {
    guard context >= 4, count >= 2 * context || (scoring == .all && count >= context) else {
        throw LatheError.invalidValue(
            field: "text", value: "\(count) tokens",
            expected: "at least \(scoring == .all ? context : 2 * context) tokens for --ctx \(context)")
    }
}

/// NaN or infinite logits: an error, so a broken model never scores (KL 0, PPL nan) as a result.
func nonFiniteLogits(_ subject: String, at place: String) -> LatheError {
    .invalidValue(
        field: subject, value: "logits that are not finite (NaN or infinity) at \(place)",
        expected: "finite logits: the model computes NaN or infinity there")
}

/// Chunk `chunk` of `context` tokens, its first token replaced by `start` when given.
func evaluationWindow(_ tokens: [Int], chunk: Int, context: Int, start: Int?) -> [Int] {
    var window = Array(tokens[(chunk * context)..<((chunk + 1) * context)])
    if let start { window[0] = start }
    return window
}

public enum Perplexity {
    /// Splits `tokens` into chunks of `context` tokens (at most `maxChunks`), evaluates each with a fresh
    /// cache and scores the next-token predictions the protocol selects. With `windowStart` (the BOS
    /// of a model that asks for one) each chunk's first token is replaced by it, as llama-perplexity
    /// does; it is never a scored target.
    public static func evaluate(
        _ session: LlamaSession, tokens: [Int], context: Int, maxChunks: Int?, protocol scoring: PerplexityProtocol,
        windowStart: Int? = nil, diagnostics: Diagnostics = .silent
    ) throws -> PerplexityResult {
        try requireEnoughTokens(tokens.count, context: context, scoring: scoring)
        let available = tokens.count / context
        let chunks = min(available, maxChunks ?? available)
        let vocab = session.weights.config.vocabSize
        var accumulator = LikelihoodAccumulator()
        let started = Date()
        for chunk in 0..<chunks {
            let window = evaluationWindow(tokens, chunk: chunk, context: context, start: windowStart)
            session.reset()
            let hidden = try session.forward(window)
            let rows = scoring.scoredRows(context: context)
            let logits = session.logits(hidden, rows: rows)
            logits.withUnsafeBufferPointer { all in
                for (offset, row) in rows.enumerated() {
                    let logProbabilities = logSoftmax(
                        UnsafeBufferPointer(rebasing: all[(offset * vocab)..<((offset + 1) * vocab)]))
                    accumulator.add(-logProbabilities[window[row + 1]])
                }
            }
            guard accumulator.sum.isFinite else {
                throw nonFiniteLogits("the model's output", at: "chunk \(chunk + 1)")
            }
            diagnostics.progress(
                .evaluating, fraction: Double(chunk + 1) / Double(chunks),
                String(format: "chunk %d/%d: PPL %.4f", chunk + 1, chunks, accumulator.perplexity))
        }
        let seconds = Date().timeIntervalSince(started)
        return PerplexityResult(
            perplexity: accumulator.perplexity, standardError: accumulator.standardError,
            scoredTokens: accumulator.count,
            chunks: chunks, seconds: seconds, tokensPerSecond: Double(chunks * context) / max(seconds, 1e-9))
    }
}

import Foundation
import Testing

@testable import LatheRuntime

@Suite("The statistics eval and verify report")
struct StatisticsTests {
    @Test("quantiles interpolate between the nearest ranks: an even count's median is its middle pair's mean")
    func quantiles() {
        #expect(VerificationResult.quantile(0.5, ofSorted: [1, 2, 3, 4]) == 2.5)
        #expect(VerificationResult.quantile(0.5, ofSorted: [1, 2, 3]) == 2)
        #expect(VerificationResult.quantile(0.99, ofSorted: (0...100).map(Double.init)) == 99)
        // numpy.percentile([0, 10, 20, 30], 99) = 29.7
        #expect(abs(VerificationResult.quantile(0.99, ofSorted: [0, 10, 20, 30]) - 29.7) < 1e-12)
        #expect(VerificationResult.quantile(1, ofSorted: [3, 7]) == 7)
        #expect(VerificationResult.quantile(0.99, ofSorted: [5]) == 5)
        #expect(VerificationResult.quantile(0.5, ofSorted: [1, 2, .infinity]) == 2)  // not 0 · ∞
    }

    @Test("the perplexity's standard error is llama-perplexity's, and undefined (NaN, JSON null) for one token")
    func standardError() {
        var one = LikelihoodAccumulator()
        one.add(2)
        #expect(one.standardError.isNaN)
        var two = LikelihoodAccumulator()
        two.add(1)
        two.add(3)
        // PPL · √(var / (n − 1)) with var the population variance 1: e² · 1.
        #expect(abs(two.standardError - exp(2)) < 1e-12)
    }
}

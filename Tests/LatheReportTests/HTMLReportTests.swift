import Foundation
import LatheCore
import LatheTestSupport
import Testing

@testable import LatheReport

@Suite("HTML verification report")
struct HTMLReportTests {
    static func report() throws -> VerificationReport {
        var base = try TinyModel.graph()
        base.sourceFormat = "safetensors"
        var candidate = base
        candidate.metadata["lathe.manifest"] = .string(#"{"recipe":{"name":"tiny"},"seed":3}"#)
        return VerificationReport(
            title: "tiny </script> & co", base: try .init(base), candidate: try .init(candidate), text: "wiki.test.raw",
            scoring: "all", context: 32, chunks: 2, scoredTokens: 62,
            kl: .init(
                mean: 0.0125, median: 0.01, p99: 0.05, max: 0.08, binEdges: [0, 1e-3, 1e-2, 1e-1],
                counts: [1, 20, 40, 1]),
            topOneAgreement: 0.9, basePerplexity: 20, candidatePerplexity: 21, layerErrors: [1e-3, 0, 2e-2],
            spectra: [.init(site: "residual", eigenvalues: [8, 4, 2, 1, 1], highRank: 1)])
    }

    /// The JSON the page embeds.
    static func embedded(_ html: String) throws -> VerificationReport {
        let start = try #require(html.range(of: #"<script type="application/json" id="lathe-report">"#))
        let end = try #require(html.range(of: "</script>", range: start.upperBound..<html.endIndex))
        let text = String(html[start.upperBound..<end.lowerBound]).replacingOccurrences(of: "<\\/", with: "</")
        return try JSONDecoder().decode(VerificationReport.self, from: Data(text.utf8))
    }

    @Test("every section is there, and the embedded JSON is the report itself")
    func sections() throws {
        let report = try Self.report()
        let html = try HTMLReport.render(report)
        for id in ["summary", "layers", "kl", "spectra", "sizes", "provenance"] {
            #expect(html.contains("<h2 id=\"\(id)\">"), "section \(id)")
        }
        #expect(try Self.embedded(html) == report)
        #expect(html.components(separatedBy: "<svg").count - 1 == 4)  // layers, KL, one spectrum, sizes
        #expect(html.contains("1.0500×"))  // perplexity ratio
        #expect(html.contains("0.012500"))  // mean KL
        #expect(html.contains("90.00 %"))  // top-1
        #expect(html.contains("top 1 at 8 bit: 50.0 % of the variance"))
        #expect(html.contains("&quot;seed&quot;"))  // provenance, escaped
        #expect(!html.contains("tiny </script>"))  // the title is escaped
        #expect(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"))  // no external resources
    }

    @Test("model sizes are summed by tensor class from the headers")
    func sizes() throws {
        let graph = try TinyModel.graph()
        let summary = try VerificationReport.ModelSummary(graph)
        #expect(summary.classes.map(\.name) == ["token embedding", "norms", "decoder linear layers"])
        let linear = try #require(summary.classes.first { $0.name == "decoder linear layers" })
        #expect(linear.weights == 2 * (64 * 64 * 2 + 2 * 32 * 64 + 3 * 64 * 128))
        #expect(linear.bitsPerWeight == 32)
        #expect(summary.bytes == graph.tensors.reduce(0) { $0 + (try! $1.info.byteCount()) })
    }

    @Test("a layer error of 0 and an empty spectrum list still render")
    func edgeCases() throws {
        var report = try Self.report()
        report.layerErrors = [0, 0]
        report.spectra = []
        let html = try HTMLReport.render(report)
        #expect(!html.contains("<h2 id=\"spectra\">"))
        // No coordinate came out NaN or infinite (printf spells them nan and inf).
        for bad in ["=\"nan", "=\"-nan", "=\"inf", "=\"-inf", ",nan", ",inf", ",-inf"] {
            #expect(!html.contains(bad), "\(bad)")
        }
    }
}

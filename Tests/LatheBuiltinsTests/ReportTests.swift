import Foundation
import LatheBuiltins
import LatheCore
import LatheReport
import LatheTestSupport
import Testing

@testable import LatheCLI

@Suite("lathe verify --report")
struct ReportCommandTests {
    @Test("the report of a tiny ResQ-style model holds every section, its data embedded as JSON")
    func verifyReport() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let calibrator = TokenCalibrator(tokens: (0..<400).map { ($0 * 37 + 11) % 96 })
        let base = try TinyModel.graph()
        let (candidate, _) = try runPasses(
            prepared + [
                ("rotate", "{}"), ("online-hadamard", "{}"), ("quantize-weights", #"{"method": "rtn"}"#),
                ("quantize-activations", "{}"),
            ], on: base, calibrator: calibrator)
        let writer = try LatheBuiltins.registry.writer("safetensors")
        let (baseURL, candidateURL) = (
            work.appendingPathComponent("base.safetensors"), work.appendingPathComponent("w4a4.safetensors")
        )
        _ = try writer.write(base, to: baseURL, options: WriteOptions())
        _ = try writer.write(candidate, to: candidateURL, options: WriteOptions())
        let text = work.appendingPathComponent("text.txt")
        try String(repeating: "the quick brown fox jumps over the lazy dog and keeps on running ", count: 20)
            .write(to: text, atomically: true, encoding: .utf8)
        let reportURL = work.appendingPathComponent("report.html")
        let arguments = [
            "verify", baseURL.path, candidateURL.path, "--text", text.path, "--ctx", "32", "--chunks", "3",
            "--protocol",
            "all", "--threads", "1",
        ]
        #expect(runLathe(arguments + ["--report", reportURL.path]) == nil)
        let html = try String(contentsOf: reportURL, encoding: .utf8)
        for id in ["summary", "layers", "kl", "spectra", "sizes", "provenance"] {
            #expect(html.contains("<h2 id=\"\(id)\">"), "section \(id)")
        }
        let start = try #require(html.range(of: #"<script type="application/json" id="lathe-report">"#))
        let end = try #require(html.range(of: "</script>", range: start.upperBound..<html.endIndex))
        let report = try JSONDecoder().decode(
            VerificationReport.self,
            from: Data(html[start.upperBound..<end.lowerBound].replacingOccurrences(of: "<\\/", with: "</").utf8))
        #expect(report.chunks == 3 && report.scoredTokens == 3 * 31)
        #expect(report.kl.counts.reduce(0, +) == report.scoredTokens)
        #expect(report.layerErrors.count == 2)
        #expect(Set(report.spectra.map(\.site)) == ["residual", "values", "keys"])
        let residual = try #require(report.spectra.first { $0.site == "residual" })
        #expect(residual.eigenvalues.count == 64 && residual.highRank == 8)
        #expect(residual.eigenvalues == residual.eigenvalues.sorted(by: >))
        #expect(report.candidate.classes.contains { $0.name == "decoder linear layers" })

        // The summary table shows the data's numbers.
        #expect(html.contains(String(format: "%.6f", report.kl.mean)))
        #expect(html.contains(String(format: "%.4f×", report.perplexityRatio)))
        #expect(report.kl.median <= report.kl.p99 && report.kl.p99 <= report.kl.max)

        // The report never replaces one of the models, and an existing page only with --force.
        let model = try Data(contentsOf: baseURL)
        let overModel = message(runLathe(arguments + ["--report", baseURL.path]))
        #expect(overModel.contains("is one of the models"), "\(overModel)")
        #expect(try Data(contentsOf: baseURL) == model)
        #expect(message(runLathe(arguments + ["--report", reportURL.path])).contains("pass --force"))
        #expect(runLathe(arguments + ["--report", reportURL.path, "--force"]) == nil)
    }

    @Test("convert --recipe --report verifies the output against the input and writes the page")
    func convertReport() throws {
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let input = work.appendingPathComponent("tiny.safetensors")
        try writeTiny(to: input)
        let text = work.appendingPathComponent("text.txt")
        try String(repeating: "a lazy dog and a quick fox ", count: 200).write(
            to: text, atomically: true, encoding: .utf8)
        let output = work.appendingPathComponent("tiny-q8_0.gguf")
        let report = work.appendingPathComponent("q8_0.html")
        #expect(
            runLathe([
                "convert", input.path, "--recipe", "q8_0", "-o", output.path, "--report", report.path, "--report-text",
                text.path,
            ]) == nil)
        let html = try String(contentsOf: report, encoding: .utf8)
        for id in ["summary", "layers", "kl", "sizes", "provenance"] {
            #expect(html.contains("<h2 id=\"\(id)\">"), "section \(id)")
        }
        #expect(html.contains("Q8_0"))  // the candidate's encoding in the sizes table
        #expect(!html.contains("<h2 id=\"spectra\">"))  // no PCA in this recipe

        // A report that cannot be written is refused before converting, and nothing is written.
        let second = work.appendingPathComponent("second.gguf")
        let missingText = message(
            runLathe([
                "convert", input.path, "--recipe", "q8_0", "-o", second.path, "--report",
                work.appendingPathComponent("second.html").path, "--report-text",
                work.appendingPathComponent("none").path,
            ]))
        #expect(missingText.contains("cannot read the report text"), "\(missingText)")
        let overInput = message(
            runLathe(["convert", input.path, "--recipe", "q8_0", "-o", second.path, "--report", input.path]))
        #expect(overInput.contains("is one of the models"), "\(overInput)")
        #expect(!FileManager.default.fileExists(atPath: second.path))
    }
}

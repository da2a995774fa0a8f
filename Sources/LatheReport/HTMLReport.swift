import Foundation
import LatheCore

/// A self-contained HTML page for a verification: inline SVG charts and CSS, the report's data as
/// JSON in a `<script type="application/json">` block (data only, nothing runs), no network.
public enum HTMLReport {
    /// The JSON form of the report (the same bytes the HTML embeds).
    public static func json(_ report: VerificationReport) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(report), as: UTF8.self)
    }

    /// Renders the page and publishes it at `url` atomically (an existing file is replaced only with
    /// `overwrite`).
    public static func write(_ report: VerificationReport, to url: URL, overwrite: Bool) throws {
        let page = try render(report)
        try AtomicOutput(destination: url, overwrite: overwrite).run { temporary in
            try page.write(to: temporary, atomically: false, encoding: .utf8)
        }
    }

    public static func render(_ report: VerificationReport) throws -> String {
        // "</" inside a script element would end it early.
        let data = try json(report).replacingOccurrences(of: "</", with: "<\\/")
        var sections = [summary(report), layerErrors(report), klHistogram(report)]
        if !report.spectra.isEmpty { sections.append(spectra(report)) }
        sections.append(sizes(report))
        sections.append(provenance(report))
        return """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(HTML.escape(report.title))</title>
            <style>
            body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1180px; margin: 24px auto;
                   padding: 0 24px; color: #222; }
            h1 { font-size: 24px; } h2 { font-size: 19px; margin-top: 32px; border-bottom: 1px solid #ddd; }
            table { border-collapse: collapse; margin: 8px 0; }
            td, th { border: 1px solid #ddd; padding: 4px 10px; text-align: right; font-variant-numeric: tabular-nums; }
            th:first-child, td:first-child { text-align: left; }
            .note { color: #555; font-size: 14px; }
            pre { background: #f5f5f5; padding: 12px; overflow-x: auto; font-size: 12px; white-space: pre-wrap; }
            </style>
            </head>
            <body>
            <h1>\(HTML.escape(report.title))</h1>
            <p class="note">Base: <code>\(HTML.escape(report.base.path))</code> · candidate:
            <code>\(HTML.escape(report.candidate.path))</code> · text <code>\(HTML.escape(report.text))</code>,
            protocol \(HTML.escape(report.scoring)), \(report.chunks) window(s) of \(report.context) tokens,
            \(report.scoredTokens) scored tokens.</p>
            \(sections.joined(separator: "\n"))
            <script type="application/json" id="lathe-report">\(data)</script>
            </body>
            </html>

            """
    }

    static func number(_ value: Double, _ format: String = "%.4f") -> String { String(format: format, value) }

    static func summary(_ r: VerificationReport) -> String {
        func row(_ cells: [String]) -> String { "<tr>" + cells.map { "<td>\($0)</td>" }.joined() + "</tr>" }
        return """
            <h2 id="summary">Summary</h2>
            <table>
            <tr><th>measure</th><th>base</th><th>candidate</th><th>candidate / base</th></tr>
            \(row(["perplexity", number(r.basePerplexity), number(r.candidatePerplexity), number(r.perplexityRatio, "%.4f×")]))
            \(row(["size (bytes)", "\(r.base.bytes)", "\(r.candidate.bytes)", number(Double(r.candidate.bytes) / Double(max(r.base.bytes, 1)), "%.3f×")]))
            \(row(["bits per weight", number(r.base.bitsPerWeight, "%.3f"), number(r.candidate.bitsPerWeight, "%.3f"), ""]))
            </table>
            <table>
            <tr><th>KL(base ‖ candidate), nats per token</th><th>mean</th><th>median</th><th>p99</th><th>max</th><th>top-1 agreement</th></tr>
            \(row(["", number(r.kl.mean, "%.6f"), number(r.kl.median, "%.6f"), number(r.kl.p99, "%.6f"), number(r.kl.max, "%.6f"), number(r.topOneAgreement * 100, "%.2f %%")]))
            </table>
            """
    }

    static func layerErrors(_ r: VerificationReport) -> String {
        let floor = 1e-9
        let logs = r.layerErrors.map { log10(max($0, floor)) }
        let low = (logs.min() ?? -9).rounded(.down)
        let high = max((logs.max() ?? 0).rounded(.up), low + 1)
        var plot = SVGPlot(
            xLabel: "layer (residual stream after the block)", yLabel: "relative RMS error (log scale)",
            xRange: 0...Double(max(r.layerErrors.count - 1, 1)), yRange: low...high, logY: true)
        plot.polyline(logs.enumerated().map { (Double($0.offset), $0.element) }, color: "#2c7fb8")
        let svg = plot.render(
            xTicks: SVGPlot.linearTicks(plot.xRange, count: 10, format: "%.0f"),
            yTicks: SVGPlot.decadeTicks(plot.yRange))
        return """
            <h2 id="layers">Per-layer error</h2>
            <p class="note">‖h<sub>candidate</sub> − h<sub>base</sub>‖ / ‖h<sub>base</sub>‖ over all evaluated tokens, in the
            base model's basis (a fused rotation of the residual stream is undone first). Values below 1e-9 are drawn at 1e-9.</p>
            \(svg)
            """
    }

    static func klHistogram(_ r: VerificationReport) -> String {
        let edges = r.kl.binEdges
        let total = Double(max(r.kl.counts.reduce(0, +), 1))
        // The first bin (below the first positive edge, zeros included) is drawn half a decade wide.
        let logEdges = edges.enumerated().map { $0.offset == 0 ? log10(edges[1]) - 0.5 : log10($0.element) }
        let top = logEdges.last.map { $0 + 0.25 } ?? 2
        let shares = r.kl.counts.map { Double($0) / total * 100 }
        var plot = SVGPlot(
            xLabel: "KL(base ‖ candidate) per token, nats (log scale; leftmost bar: below 1e-6)",
            yLabel: "share of scored tokens (%)", xRange: (logEdges.first ?? -6.5)...top,
            yRange: 0...max((shares.max() ?? 1) * 1.1, 1))
        for (index, share) in shares.enumerated() where r.kl.counts[index] > 0 {
            let upper = index + 1 < logEdges.count ? logEdges[index + 1] : top
            plot.bar(
                from: logEdges[index], to: upper, height: share, color: "#41ab5d",
                title: "\(r.kl.counts[index]) tokens, " + number(share, "%.2f %%"))
        }
        plot.verticalMarker(at: log10(max(r.kl.mean, 1e-6)), label: "mean " + number(r.kl.mean, "%.4g"))
        let svg = plot.render(
            xTicks: SVGPlot.decadeTicks(plot.xRange), yTicks: SVGPlot.linearTicks(plot.yRange, format: "%.0f"))
        return """
            <h2 id="kl">KL divergence per token</h2>
            \(svg)
            """
    }

    static func spectra(_ r: VerificationReport) -> String {
        var parts = [
            """
            <h2 id="spectra">PCA spectra</h2>
            <p class="note">Eigenvalues of each basis site's calibration second moment, largest first (values and keys
            averaged over layers). The dashed line marks the high-precision cut: the directions left of it are kept at 8 bit.</p>
            """
        ]
        for spectrum in r.spectra {
            let values = spectrum.eigenvalues.map { log10(max($0, 1e-12)) }
            let low = (values.min() ?? -12).rounded(.down)
            let high = max((values.max() ?? 0).rounded(.up), low + 1)
            var plot = SVGPlot(
                height: 260, xLabel: "direction (largest eigenvalue first)", yLabel: "eigenvalue (log scale)",
                xRange: 1...Double(max(values.count, 2)), yRange: low...high, logY: true)
            plot.polyline(values.enumerated().map { (Double($0.offset + 1), $0.element) }, color: "#756bb1")
            plot.verticalMarker(
                at: Double(spectrum.highRank) + 0.5,
                label: "top \(spectrum.highRank) at 8 bit: "
                    + number(spectrum.keptShare * 100, "%.1f %% of the variance"))
            parts.append("<h3>\(HTML.escape(spectrum.site)) (\(values.count) directions)</h3>")
            parts.append(
                plot.render(
                    xTicks: SVGPlot.linearTicks(plot.xRange, count: 8, format: "%.0f"),
                    yTicks: SVGPlot.decadeTicks(plot.yRange)))
        }
        return parts.joined(separator: "\n")
    }

    static func sizes(_ r: VerificationReport) -> String {
        var rows: [String] = []
        for (label, model) in [("base", r.base), ("candidate", r.candidate)] {
            for item in model.classes {
                rows.append(
                    "<tr><td>\(label): \(HTML.escape(item.name))</td><td>\(HTML.escape(item.encodings.joined(separator: ", ")))</td>"
                        + "<td>\(item.weights)</td><td>\(item.bytes)</td><td>\(number(item.bitsPerWeight, "%.3f"))</td></tr>"
                )
            }
        }
        let classes = r.candidate.classes
        let maxBits = max(classes.map(\.bitsPerWeight).max() ?? 1, r.base.classes.map(\.bitsPerWeight).max() ?? 1)
        var plot = SVGPlot(
            height: 60 + 36 * Double(classes.count), margin: (left: 230, right: 20, top: 10, bottom: 46),
            xLabel: "bits per weight (scales included)", yLabel: "", xRange: 0...maxBits * 1.05,
            yRange: 0...Double(max(classes.count, 1)))
        for (index, item) in classes.enumerated() {
            let y0 = Double(classes.count - index - 1)
            plot.body.append(
                String(
                    format:
                        "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fd8d3c\"><title>%.3f bits per weight</title></rect><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"13\">%@</text><text x=\"%.1f\" y=\"%.1f\" font-size=\"12\">%.3f</text>",
                    plot.x(0), plot.y(y0 + 0.8), plot.x(item.bitsPerWeight) - plot.x(0),
                    plot.y(y0 + 0.2) - plot.y(y0 + 0.8),
                    item.bitsPerWeight, plot.margin.left - 8, plot.y(y0 + 0.5) + 4, HTML.escape(item.name),
                    plot.x(item.bitsPerWeight) + 6, plot.y(y0 + 0.5) + 4, item.bitsPerWeight))
        }
        let svg = plot.render(xTicks: SVGPlot.linearTicks(plot.xRange, count: 8, format: "%g"), yTicks: [])
        return """
            <h2 id="sizes">Where the bits went</h2>
            <p class="note">Candidate's bits per weight by class of tensor.</p>
            \(svg)
            <table>
            <tr><th>model: tensor class</th><th>encodings</th><th>weights</th><th>bytes</th><th>bits/weight</th></tr>
            \(rows.joined(separator: "\n"))
            </table>
            """
    }

    static func provenance(_ r: VerificationReport) -> String {
        let manifest = r.candidate.provenance.map { text -> String in
            guard let data = text.data(using: .utf8), let object = try? JSONSerialization.jsonObject(with: data),
                let pretty = try? JSONSerialization.data(
                    withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            else { return text }
            return String(decoding: pretty, as: UTF8.self)
        }
        return """
            <h2 id="provenance">Provenance</h2>
            \(manifest.map { "<pre>\(HTML.escape($0))</pre>" } ?? "<p class=\"note\">The candidate carries no provenance manifest (lathe.manifest).</p>")
            """
    }
}

import Foundation

/// Small inline-SVG charts: axes with ticks and labels, lines, bars. No script, no external file.
struct SVGPlot {
    var width = 1100.0
    var height = 320.0
    var margin = (left: 80.0, right: 20.0, top: 20.0, bottom: 56.0)
    var xLabel: String
    var yLabel: String
    var xRange: ClosedRange<Double>
    var yRange: ClosedRange<Double>
    /// Log10 axes take values already in log10 and label ticks as powers of ten.
    var logY = false
    var body: [String] = []

    var plotWidth: Double { width - margin.left - margin.right }
    var plotHeight: Double { height - margin.top - margin.bottom }

    func x(_ value: Double) -> Double {
        let span = xRange.upperBound - xRange.lowerBound
        return margin.left + (span == 0 ? 0 : (value - xRange.lowerBound) / span * plotWidth)
    }

    func y(_ value: Double) -> Double {
        let span = yRange.upperBound - yRange.lowerBound
        return margin.top + plotHeight - (span == 0 ? 0 : (value - yRange.lowerBound) / span * plotHeight)
    }

    mutating func polyline(_ points: [(Double, Double)], color: String) {
        let path = points.map { String(format: "%.1f,%.1f", x($0.0), y($0.1)) }.joined(separator: " ")
        body.append("<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(path)\"/>")
        for point in points {
            body.append(
                String(format: "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%@\"/>", x(point.0), y(point.1), color)
            )
        }
    }

    mutating func bar(from x0: Double, to x1: Double, height value: Double, color: String, title: String) {
        let (left, right) = (x(x0), x(x1))
        let top = y(value)
        let bottom = y(yRange.lowerBound)
        body.append(
            String(
                format:
                    "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%@\"><title>%@</title></rect>",
                left + 1, top, max(right - left - 2, 1), max(bottom - top, 0), color, HTML.escape(title)))
    }

    mutating func verticalMarker(at value: Double, label: String) {
        let position = x(value)
        body.append(
            String(
                format:
                    "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#c0392b\" stroke-dasharray=\"6 4\" stroke-width=\"2\"/>",
                position, margin.top, position, margin.top + plotHeight))
        body.append(
            String(
                format: "<text x=\"%.1f\" y=\"%.1f\" fill=\"#c0392b\" font-size=\"13\">%@</text>", position + 6,
                margin.top + 16, HTML.escape(label)))
    }

    /// Ticks at `xTicks`/`yTicks` (in axis units) with their labels, the frame and the axis titles.
    func render(xTicks: [(Double, String)], yTicks: [(Double, String)]) -> String {
        var parts = [
            String(
                format:
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" width=\"100%%\" role=\"img\">",
                width, height),
            String(
                format: "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fafafa\" stroke=\"#999\"/>",
                margin.left, margin.top, plotWidth, plotHeight),
        ]
        for (value, label) in yTicks where yRange.contains(value) {
            parts.append(
                String(
                    format:
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" font-size=\"12\">%@</text>",
                    margin.left, y(value), margin.left + plotWidth, y(value), margin.left - 6, y(value) + 4,
                    HTML.escape(label)))
        }
        for (value, label) in xTicks where xRange.contains(value) {
            parts.append(
                String(
                    format:
                        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/><text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"12\">%@</text>",
                    x(value), margin.top + plotHeight, x(value), margin.top + plotHeight + 5, x(value),
                    margin.top + plotHeight + 20, HTML.escape(label)))
        }
        parts += body
        parts.append(
            String(
                format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"14\">%@</text>",
                margin.left + plotWidth / 2, height - 12, HTML.escape(xLabel)))
        parts.append(
            String(
                format:
                    "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">%@</text>",
                margin.top + plotHeight / 2, HTML.escape(yLabel)))
        parts.append("</svg>")
        return parts.joined(separator: "\n")
    }

    /// Ticks at every power of ten in a log10 range.
    static func decadeTicks(_ range: ClosedRange<Double>) -> [(Double, String)] {
        Array(Int(range.lowerBound.rounded(.up))...Int(range.upperBound.rounded(.down))).map {
            (Double($0), "1e\($0)")
        }
    }

    /// About `count` evenly spaced round ticks over a linear range.
    static func linearTicks(_ range: ClosedRange<Double>, count: Int = 6, format: String = "%g") -> [(Double, String)] {
        let span = range.upperBound - range.lowerBound
        guard span > 0 else { return [(range.lowerBound, String(format: format, range.lowerBound))] }
        let raw = span / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? raw
        var ticks: [(Double, String)] = []
        var value = (range.lowerBound / step).rounded(.up) * step
        while value <= range.upperBound + step * 1e-9 {
            ticks.append((value, String(format: format, value)))
            value += step
        }
        return ticks
    }
}

enum HTML {
    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            default: result.append(character)
            }
        }
        return result
    }
}

import FormatSafetensors
import Foundation
import LatheCore
import LatheRuntime
import LatheTestSupport
import LinearAlgebra
import Testing

/// Keeps every activation it sees, for the direct computation.
final class Recorder: ActivationObserver {
    var rows: [String: [[Double]]] = [:]
    let headDim: Int
    init(headDim: Int) { self.headDim = headDim }

    func observe(_ site: ActivationSite, layer: Int, rows count: Int, width: Int, values: UnsafeBufferPointer<Float>) {
        let heads = site.isPerHead ? width / headDim : 1
        let w = width / heads
        for head in 0..<heads {
            let key = CalibrationStatistics.key(site, layer: layer, head: site.isPerHead ? head : nil)
            for r in 0..<count {
                rows[key, default: []].append((0..<w).map { Double(values[r * width + head * w + $0]) })
            }
        }
    }
}

@Suite("Calibration statistics")
struct CalibrationTests {
    @Test("accumulated moments equal a direct computation over the same windows (Float32 products: 1e-5 relative)")
    func matchesDirectComputation() throws {
        let graph = try TinyModel.graph()
        let weights = try LlamaWeights(graph)
        let tokens = (0..<200).map { ($0 * 37 + 11) % weights.config.vocabSize }
        let statistics = CalibrationStatistics(headDim: weights.config.headDim)
        let session = LlamaSession(weights: weights, maxContext: 16)
        try statistics.collect(session, tokens: tokens, windows: 3, length: 16, seed: 5)

        // The same windows again, recording every row.
        let recorder = Recorder(headDim: weights.config.headDim)
        session.observer = recorder
        var generator = SeededGenerator(seed: 5)
        for _ in 0..<3 {
            let start = generator.nextIndex(below: tokens.count - 16)
            session.reset()
            _ = try session.forward(Array(tokens[start..<(start + 16)]))
        }
        let moments = statistics.moments  // unpacked on each access: take it once
        #expect(moments.count == recorder.rows.count)
        #expect(moments.count == weights.config.layerCount * (4 + 2 * weights.config.kvHeadCount))
        for (key, rows) in recorder.rows {
            let m = try #require(moments[key])
            #expect(m.count == 48)
            let w = m.width
            var worst = 0.0
            var scale = 0.0
            for i in 0..<w {
                for j in 0..<w {
                    let direct = rows.reduce(0.0) { $0 + $1[i] * $1[j] }
                    worst = max(worst, abs(direct - m.secondMoment[i * w + j]))
                    scale = max(scale, abs(direct))
                }
                let sum = rows.reduce(0.0) { $0 + $1[i] }
                #expect(abs(sum - m.sum[i]) <= 1e-9 * max(1, abs(sum)), "\(key) sum[\(i)]")
            }
            #expect(worst <= 1e-5 * scale, "\(key): \(worst) vs scale \(scale)")
        }
    }

    @Test("statistics survive a safetensors file and read back as the same moments")
    func roundTrip() throws {
        let weights = try LlamaWeights(TinyModel.graph())
        let statistics = CalibrationStatistics(headDim: weights.config.headDim, sites: [.attentionInput, .rotatedKeys])
        try statistics.collect(
            LlamaSession(weights: weights, maxContext: 8), tokens: Array(0..<50), windows: 2, length: 8, seed: 1)
        let work = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: work) }
        let url = work.appendingPathComponent("stats.safetensors")
        _ = try SafetensorsWriter().write(
            statistics.graph(metadata: Metadata([("lathe.calibration.schema", .uint32(1))])), to: url,
            options: WriteOptions())
        let back = try CalibrationStatistics(
            graph: SafetensorsReader().read(url, options: ReadOptions()), headDim: weights.config.headDim)
        let (original, read) = (statistics.moments, back.moments)
        #expect(read.keys.sorted() == original.keys.sorted())
        for (key, m) in original {
            #expect(read[key]?.secondMoment == m.secondMoment)
            #expect(read[key]?.count == m.count)
        }
    }
}

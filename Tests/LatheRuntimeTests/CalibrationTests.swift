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
    @Test("layer by layer, one layer decoded at a time, gives exactly the whole-model statistics (1 and 2 threads)")
    func layerByLayerIsExact() throws {
        let config = TinyModel.config(layers: 3, hidden: 64, heads: 4, kvHeads: 2, ffn: 128, vocab: 96)
        let graph = try TinyModel.graph(config)
        let tokens = (0..<300).map { ($0 * 37 + 11) % config.vocabSize }
        let whole = CalibrationStatistics(headDim: config.headDim)
        try whole.collect(
            LlamaSession(weights: try LlamaWeights(graph), maxContext: 24), tokens: tokens, windows: 4, length: 24,
            seed: 9)
        let expected = whole.takeMoments()
        #expect(whole.count == 0, "taking the moments empties the collector")
        let spillDirectory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: spillDirectory) }
        // In memory with 1 and 2 threads, and spilled to files (every entry: no minimum size).
        let spill = SpillStore(directory: spillDirectory, prefix: "test", minimumBytes: 0)
        for (threads, store) in [
            (1, CalibrationMoments()), (2, CalibrationMoments()), (2, CalibrationMoments(spill: spill)),
        ] {
            let layered = CalibrationStatistics(headDim: config.headDim)
            try layered.collectLayerByLayer(
                graph, into: store, tokens: tokens, windows: 4, length: 24, seed: 9, threads: threads)
            #expect(layered.count == 0, "every layer's statistics moved into the store")
            let moments = store.all
            #expect(moments.keys.sorted() == expected.keys.sorted())
            for (key, value) in expected {
                #expect(moments[key]?.secondMoment == value.secondMoment, "\(key), \(threads) threads: Σxxᵀ differs")
                #expect(moments[key]?.sum == value.sum && moments[key]?.count == value.count, "\(key): Σx or n differs")
            }
        }
    }

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
            var direct = [Double](repeating: 0, count: w * w)
            for i in 0..<w {
                for j in 0..<w {
                    direct[i * w + j] = rows.reduce(0.0) { $0 + $1[i] * $1[j] }
                }
                let sum = rows.reduce(0.0) { $0 + $1[i] }
                #expect(abs(sum - m.sum[i]) <= 1e-9 * max(1, abs(sum)), "\(key) sum[\(i)]")
            }
            let (worst, scale) = (maxDifference(direct, m.secondMoment), maxMagnitude(direct))
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

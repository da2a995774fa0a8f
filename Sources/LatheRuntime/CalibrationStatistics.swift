import Foundation
import LatheCore
import LinearAlgebra

/// Second-moment statistics of activations at every site and layer (per KV head where the site is
/// per head), products formed in Float32 per batch and accumulated in Float64 over calibration windows: Σ xxᵀ, Σ x and the row count. They
/// are what PCA bases and GPTQ Hessians are computed from, and they travel as a ModelGraph of F64
/// tensors (written as safetensors; schema in formats/calibration.md).
public final class CalibrationStatistics: ActivationObserver {
    public typealias Moments = ActivationMoments

    public let headDim: Int
    /// Running sums while collecting. Σxxᵀ is symmetric, so only its upper triangle is kept (packed
    /// row by row): half the memory of the full matrices, which dominate calibration's footprint.
    private var accumulators: [String: Accumulator] = [:]
    public var sites: Set<ActivationSite>
    /// Workers for forming each batch's products (use with single-threaded BLAS).
    public var threads = 1

    public init(headDim: Int, sites: Set<ActivationSite> = Set(ActivationSite.allCases)) {
        self.headDim = headDim
        self.sites = sites
    }

    /// The statistics as full matrices (unpacked on each call: take it once).
    public var moments: [String: Moments] { accumulators.mapValues(\.moments) }

    /// The statistics as full matrices, each packed accumulator released as soon as it is unpacked,
    /// so the two forms never coexist in full; the collector is empty afterwards.
    public func takeMoments() -> [String: Moments] {
        var result: [String: Moments] = [:]
        for key in accumulators.keys.sorted() {
            result[key] = accumulators.removeValue(forKey: key)?.moments
        }
        return result
    }

    /// Number of statistics collected.
    public var count: Int { accumulators.count }

    struct Accumulator {
        var width: Int
        var upper: [Double]
        var sum: [Double]
        var count = 0

        init(width: Int) {
            self.width = width
            upper = [Double](repeating: 0, count: width * (width + 1) / 2)
            sum = [Double](repeating: 0, count: width)
        }

        init(_ moments: Moments) {
            self.init(width: moments.width)
            var index = 0
            for i in 0..<width {
                for j in i..<width {
                    upper[index] = moments.secondMoment[i * width + j]
                    index += 1
                }
            }
            sum = moments.sum
            count = moments.count
        }

        var moments: Moments {
            var m = Moments(width: width)
            var index = 0
            for i in 0..<width {
                for j in i..<width {
                    m.secondMoment[i * width + j] = upper[index]
                    m.secondMoment[j * width + i] = upper[index]
                    index += 1
                }
            }
            m.sum = sum
            m.count = count
            return m
        }
    }

    /// The tensor-name stem of a site, layer and head: `attn_input.3`, `k_rope.3.head1`.
    public static func key(_ site: ActivationSite, layer: Int, head: Int? = nil) -> String {
        "\(site.rawValue).\(layer)" + (head.map { ".head\($0)" } ?? "")
    }

    public func observe(_ site: ActivationSite, layer: Int, rows: Int, width: Int, values: UnsafeBufferPointer<Float>) {
        guard sites.contains(site) else { return }
        if site.isPerHead {
            for head in 0..<(width / headDim) {
                accumulate(
                    Self.key(site, layer: layer, head: head), values, rows: rows, stride: width, offset: head * headDim,
                    width: headDim)
            }
        } else {
            accumulate(Self.key(site, layer: layer), values, rows: rows, stride: width, offset: 0, width: width)
        }
    }

    private func accumulate(
        _ key: String, _ values: UnsafeBufferPointer<Float>, rows: Int, stride: Int, offset: Int, width: Int
    ) {
        var entry = accumulators[key] ?? Accumulator(width: width)
        accumulators[key] = nil  // keep the arrays uniquely referenced while they are updated
        var x = [Float](repeating: 0, count: rows * width)
        for r in 0..<rows {
            for c in 0..<width {
                let v = values[r * stride + offset + c]
                x[r * width + c] = v
                entry.sum[c] += Double(v)
            }
        }
        // This call's XᵀX in Float32 (as the reference forms its products), added into the Float64
        // running sums; tiles of 96 output columns are dealt to the workers. The tiles do not depend
        // on the thread count, so neither do the statistics.
        var product = [Float](repeating: 0, count: width * width)
        let columns = 96
        let parts = (width + columns - 1) / columns
        x.withUnsafeBufferPointer { xp in
            product.withUnsafeMutableBufferPointer { pp in
                let (a, c) = (UnsafeSendable(xp.baseAddress!), UnsafeSendable(pp.baseAddress!))
                let run: @Sendable (Int) -> Void = { part in
                    let first = part * columns
                    let count = min(columns, width - first)
                    guard count > 0 else { return }
                    BLAS.gemm(
                        transA: .transposed, m: width, n: count, k: rows, a: a.value, lda: width,
                        b: a.value + first, ldb: width, c: c.value + first, ldc: width)
                }
                if parts == 1 || threads == 1 || width * width * rows < 1 << 20 {
                    for part in 0..<parts { run(part) }
                } else {
                    DispatchQueue.concurrentPerform(iterations: parts, execute: run)
                }
            }
        }
        entry.upper.withUnsafeMutableBufferPointer { m in
            var index = 0
            for i in 0..<width {
                for j in i..<width {
                    m[index] += Double(product[i * width + j])
                    index += 1
                }
            }
        }
        entry.count += rows
        accumulators[key] = entry
    }

    /// Refuses a text too short for one window. Call it before making a session of `length`
    /// positions, which would first allocate a cache that size.
    public static func requireEnoughTokens(_ count: Int, length: Int) throws(LatheError) {
        guard count > length else {
            throw LatheError.invalidValue(
                field: "calibration text", value: "\(count) tokens", expected: "more than the window length \(length)")
        }
    }

    /// Runs `windows` random windows of `length` tokens from `tokens` (seeded, so the same on every
    /// machine) through `session` and accumulates the statistics.
    public func collect(
        _ session: LlamaSession, tokens: [Int], windows: Int, length: Int, seed: UInt64,
        diagnostics: Diagnostics = .silent
    ) throws {
        try Self.requireEnoughTokens(tokens.count, length: length)
        var generator = SeededGenerator(seed: seed)
        let previous = session.observer
        session.observer = self
        defer { session.observer = previous }
        for window in 0..<windows {
            let start = generator.nextIndex(below: tokens.count - length)
            session.reset()
            _ = try session.forward(Array(tokens[start..<(start + length)]))
            diagnostics.progress(
                .calibrating, fraction: Double(window + 1) / Double(windows), "window \(window + 1)/\(windows)")
        }
    }

    /// Collects over the same windows as `collect`, but layer by layer: the windows' hidden states
    /// are kept (`windows × length × hidden` floats) and only one layer of `graph` is decoded at a
    /// time, so memory holds one layer instead of the whole model. Every site sees the same values
    /// in the same order as with `collect`, so the statistics are identical. Each layer's statistics
    /// move into `store` as soon as the layer is done (to its spill files, when it has a spill store).
    public func collectLayerByLayer(
        _ graph: ModelGraph, into store: CalibrationMoments, tokens: [Int], windows: Int, length: Int,
        seed: UInt64, threads: Int, lowBit: Bool = true, diagnostics: Diagnostics = .silent
    ) throws {
        let walk = try LayerWalk(
            graph, tokens: tokens, windows: windows, length: length, seed: seed, threads: threads, lowBit: lowBit)
        let layers = walk.shell.config.layerCount
        for layer in 0..<layers {
            try walk.run(layer, of: graph, observer: self, advancing: true)
            for key in accumulators.keys.sorted() { store[key] = accumulators.removeValue(forKey: key)?.moments }
            diagnostics.progress(
                .calibrating, fraction: Double(layer + 1) / Double(layers), "layer \(layer + 1)/\(layers)")
        }
    }

    /// The statistics as F64 tensors `<key>.second_moment` [w, w], `<key>.sum` [w] and I64 `<key>.count` [].
    public func graph(metadata: Metadata) throws -> ModelGraph {
        var graph = try ModelGraph(source: "calibration", metadata: metadata)
        let all = moments
        for key in all.keys.sorted() {
            guard let m = all[key] else { continue }
            try graph.append(
                Tensor(
                    info: TensorInfo(name: key + ".second_moment", dtype: .f64, shape: [m.width, m.width]),
                    storage: TensorStorage(values: m.secondMoment)))
            try graph.append(
                Tensor(
                    info: TensorInfo(name: key + ".sum", dtype: .f64, shape: [m.width]),
                    storage: TensorStorage(values: m.sum)))
            try graph.append(
                Tensor(
                    info: TensorInfo(name: key + ".count", dtype: .i64, shape: []),
                    storage: TensorStorage(values: [Int64(m.count)])))
        }
        return graph
    }

    /// Statistics read back from such a graph (from Lathe or from an external engine).
    public convenience init(graph: ModelGraph, headDim: Int) throws {
        self.init(headDim: headDim)
        for tensor in graph.tensors where tensor.name.hasSuffix(".second_moment") {
            let key = String(tensor.name.dropLast(".second_moment".count))
            guard tensor.info.dtype == .f64, tensor.info.shape.rank == 2,
                tensor.info.shape.dimensions[0] == tensor.info.shape.dimensions[1]
            else {
                throw LatheError.inTensor(
                    tensor.name,
                    .invalidValue(
                        field: "calibration tensor", value: "\(tensor.info.dtype) \(tensor.info.shape)",
                        expected: "F64 [w, w]"))
            }
            let width = tensor.info.shape.dimensions[0]
            let sum = try graph.tensor(named: key + ".sum")
            let count = try graph.tensor(named: key + ".count")
            guard sum.info.dtype == .f64, sum.info.shape == [width], count.info.dtype == .i64 else {
                throw LatheError.inTensor(
                    key,
                    .invalidValue(
                        field: "calibration tensors",
                        value: "sum \(sum.info.dtype) \(sum.info.shape), count \(count.info.dtype)",
                        expected: "F64 [\(width)] and I64 []"))
            }
            var m = Moments(width: width)
            m.secondMoment = try tensor.storage().values(as: Double.self)
            m.sum = try sum.storage().values(as: Double.self)
            m.count = Int(try count.storage().values(as: Int64.self).first ?? 0)
            accumulators[key] = Accumulator(m)
        }
    }
}

/// The calibration windows of a model, walked one layer at a time: their hidden states are kept
/// between layers and each layer is decoded only while it runs. The windows are the ones `collect`
/// draws (same seed, same order).
public final class LayerWalk: LayerwiseCalibration {
    /// The model's non-layer weights and settings (embedding, schemes, online transforms).
    let shell: LlamaWeights
    private var hidden: [[Float]]
    private let length: Int
    private let threads: Int
    private let lowBit: Bool

    public init(
        _ graph: ModelGraph, tokens: [Int], windows: Int, length: Int, seed: UInt64, threads: Int,
        lowBit: Bool = true
    ) throws {
        try CalibrationStatistics.requireEnoughTokens(tokens.count, length: length)
        var shell = try LlamaWeights(graph, lowBit: lowBit, layerByLayer: true)
        let (h, vocab) = (shell.config.hiddenSize, shell.config.vocabSize)
        var generator = SeededGenerator(seed: seed)
        hidden = try (0..<windows).map { _ in
            let start = generator.nextIndex(below: tokens.count - length)
            var x = [Float](repeating: 0, count: length * h)
            for (row, token) in tokens[start..<(start + length)].enumerated() {
                guard token >= 0, token < vocab else {
                    throw LatheError.invalidValue(field: "token id", value: "\(token)", expected: "0..<\(vocab)")
                }
                for j in 0..<h { x[row * h + j] = shell.embedding[token * h + j] }
            }
            return x
        }
        shell.embedding = []
        self.shell = shell
        self.length = length
        self.threads = threads
        self.lowBit = lowBit
    }

    /// Runs layer `layer` of `graph` on every window, showing its sites to `observer`; the states
    /// take the layer's output when `advancing`.
    func run(_ layer: Int, of graph: ModelGraph, observer: (any ActivationObserver)?, advancing: Bool) throws {
        let session = LlamaSession(
            weights: try shell.withOnlyLayer(layer, of: graph, lowBit: lowBit), maxContext: length, threads: threads)
        session.firstLayer = layer
        session.observer = observer
        // The session's threads split each GEMM; BLAS stays single-threaded (see LlamaSession.threads).
        try BLAS.withThreadCount(1) {
            for window in hidden.indices {
                session.reset()
                if advancing {
                    try session.forwardLayers(&hidden[window], tokens: length)
                } else {
                    var x = hidden[window]
                    try session.forwardLayers(&x, tokens: length)
                }
            }
        }
    }

    public func statistics(ofLayer layer: Int, in graph: ModelGraph) throws -> [String: ActivationMoments] {
        let statistics = CalibrationStatistics(headDim: shell.config.headDim)
        statistics.threads = threads
        try run(layer, of: graph, observer: statistics, advancing: false)
        return statistics.takeMoments()
    }

    public func advance(throughLayer layer: Int, of graph: ModelGraph) throws {
        try run(layer, of: graph, observer: nil, advancing: true)
    }
}

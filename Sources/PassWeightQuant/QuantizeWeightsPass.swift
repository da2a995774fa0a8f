import Foundation
import LatheCore

/// `quantize-weights`: per-output-channel symmetric quantization of the decoder's linear layers,
/// by RTN or GPTQ (Hessians from the calibration statistics of the model as it stands), with the
/// high-precision input columns (the subspace tail recorded by `pca-basis`; per head for o_proj)
/// on their own 8-bit scale. The weights are stored dequantized (F32): the runtime simulates
/// exactly the grid a packed writer will store.
public struct QuantizeWeightsPass: ModelPass {
    public struct Options: Codable, Sendable {
        /// rtn or gptq (default).
        public var method: String?
        public var bits: Int?
        public var highBits: Int?
        /// MSE clip search per row and part (default true).
        public var clipSearch: Bool?
        /// Columns per scale group within each part (default: one scale per row and part).
        public var groupSize: Int?
        /// A zero point per scale (the range [min, max] instead of ±max; default false).
        public var asymmetric: Bool?
        /// Scales rounded to F16, as ggml stores its block scales, so that lpack keeps them in two
        /// bytes (default false: F32).
        public var halfScales: Bool?
        /// GPTQ visits columns by decreasing Hessian diagonal within each part (default false).
        public var actOrder: Bool?
        public var blockSize: Int?
        public var damping: Double?
        /// Regex over tensor names to quantize (default: every decoder linear layer).
        public var tensors: String?
        /// Token embedding and output head: keep (default), f16, bf16, int8 or int4 (per row).
        public var embeddings: String?
        public var head: String?
        /// GPTQ only: each layer's Hessians from inputs that went through the layers before it as
        /// quantized, the calibration windows walked one layer at a time (default false: from the
        /// statistics of the full-precision model).
        public var sequential: Bool?
    }

    public static let passID = "quantize-weights"
    public static let summary =
        "RTN or GPTQ weight quantization, per output channel, with the high-precision subspace at 8 bit"

    let method: String
    let bits: Int
    let highBits: Int
    let search: ScaleSearch
    let groupSize: Int?
    let asymmetric: Bool
    let halfScales: Bool
    let actOrder: Bool
    let blockSize: Int
    let damping: Double
    let selection: TensorPattern?
    let embeddings: String
    let head: String
    let sequential: Bool

    static let linearKinds = [
        "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj",
        "mlp.down_proj",
    ]
    static let tableEncodings = ["keep", "f16", "bf16", "int8", "int4"]

    public init(options: Options) throws {
        let field = "options of pass 'quantize-weights'"
        method = options.method ?? "gptq"
        guard ["rtn", "gptq"].contains(method) else {
            throw LatheError.invalidValue(field: field + ": method", value: method, expected: "rtn or gptq")
        }
        bits = options.bits ?? 4
        highBits = options.highBits ?? 8
        guard (2...8).contains(bits), (2...8).contains(highBits) else {
            throw LatheError.invalidValue(field: field + ": bits", value: "\(bits)/\(highBits)", expected: "2 to 8")
        }
        search = ScaleSearch(clipSearch: options.clipSearch ?? true)
        groupSize = options.groupSize
        if let groupSize, groupSize < 1 {
            throw LatheError.invalidValue(field: field + ": groupSize", value: "\(groupSize)", expected: "at least 1")
        }
        asymmetric = options.asymmetric ?? false
        halfScales = options.halfScales ?? false
        actOrder = options.actOrder ?? false
        blockSize = max(1, options.blockSize ?? 128)
        damping = options.damping ?? 0.01
        selection = try options.tensors.map { try TensorPattern($0, field: field + ": tensors") }
        embeddings = options.embeddings ?? "keep"
        head = options.head ?? "keep"
        sequential = options.sequential ?? false
        if sequential, method != "gptq" {
            throw LatheError.invalidValue(field: field + ": sequential", value: "true", expected: "method gptq")
        }
        for (name, value) in [("embeddings", embeddings), ("head", head)] where !Self.tableEncodings.contains(value) {
            throw LatheError.invalidValue(
                field: field + ": \(name)", value: value, expected: Self.tableEncodings.joined(separator: ", "))
        }
    }

    /// The quantized linears as (tensor, layer, kind).
    func targets(_ graph: ModelGraph, _ config: LlamaConfig) -> [(name: String, layer: Int, kind: String)] {
        (0..<config.layerCount).flatMap { layer in
            Self.linearKinds.compactMap { kind in
                let name = LlamaTensorNames.layerTensor(layer, kind)
                guard graph[name] != nil, selection?.matches(name) ?? true else { return nil }
                return (name, layer, kind)
            }
        }
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        let layout = try SubspaceLayout(metadata: graph.metadata)
        let names = targets(graph, config).map(\.name)
        var decisions = try names.map {
            TensorDecision(
                tensor: $0, from: try graph.tensor(named: $0).info.dtype, to: .f32,
                reason: "\(method) W\(bits) (dequantized)")
        }
        for (name, choice) in [(LlamaTensorNames.embedding, embeddings), (LlamaTensorNames.head, head)]
        where choice != "keep" {
            guard let tensor = graph[name] else { continue }
            let to: DType = choice == "f16" ? .f16 : choice == "bf16" ? .bf16 : .f32
            decisions.append(TensorDecision(tensor: name, from: tensor.info.dtype, to: to, reason: choice))
        }
        let largest = try names.map { try graph.tensor(named: $0).info.shape.elementCount() }.max() ?? 0
        // Recorded in the plan too, so a plan of the steps after (and of an lpack output's packing) sees it.
        var recorded = graph.metadata
        try record(layout, in: &recorded)
        var plan = PassPlan(
            changedTensors: decisions.map(\.tensor), requires: method == "gptq" ? [CalibrationArtifact.name] : [],
            notes: [
                "\(names.count) matrices, \(bits)-bit per output row; the input columns of the high-precision subspace "
                    + (layout.basis == "none"
                        ? "(if an earlier pca-basis step records one)"
                        : "(\(layout.hiddenHigh), \(layout.headHigh) per head of o_proj)") + " at \(highBits) bit"
            ],
            decisions: decisions, peakBytes: 7 * largest * 4 * 3 + config.ffnSize * config.ffnSize * 8 * 2)
        plan.recordedMetadata[QuantizationScheme.metadataKey] = recorded[QuantizationScheme.metadataKey]
        return plan
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        _ = try plan(graph)
        let layout = try SubspaceLayout(metadata: graph.metadata)
        let statistics = method == "gptq" ? try context.require(CalibrationArtifact.self, by: Self.passID) : nil
        let walk = try sequential ? Self.layerwise(graph, context) : nil
        let all = targets(graph, config)
        for layer in 0..<config.layerCount {
            let jobs = all.filter { $0.layer == layer }
            // Sequential: this layer's inputs as the already quantized layers before it produce them.
            let fresh = try walk?.statistics(ofLayer: layer, in: graph)
            let inputs = try jobs.map { job in
                let (rows, columns) = try graph.matrixShape(job.name)
                let hessian = try statistics.map { stats -> [Double] in
                    let key = Self.hessianSite(job.kind) + ".\(layer)"
                    guard let m = fresh?[key] ?? stats[key], m.width == columns else {
                        throw LatheError.missingField(
                            key, in: "the calibration statistics (GPTQ needs the input moments of \(job.name))")
                    }
                    return m.meanSecondMoment
                }
                return (weights: try graph.floats(job.name), rows: rows, columns: columns, hessian: hessian)
            }
            let results = ResultSlots(count: jobs.count)
            DispatchQueue.concurrentPerform(iterations: jobs.count) { index in
                let job = jobs[index]
                let input = inputs[index]
                results.set(index) {
                    let high = Self.highColumns(job.kind, columns: input.columns, layout: layout, config: config)
                    return try quantize(
                        input.weights, rows: input.rows, columns: input.columns, high: high, hessian: input.hessian)
                }
            }
            for (index, job) in jobs.enumerated() { try graph.setFloats(job.name, try results.get(index)) }
            try walk?.advance(throughLayer: layer, of: graph)
            context.diagnostics.progress(
                .quantizing, fraction: Double(layer + 1) / Double(config.layerCount),
                "quantize-weights (\(method)): layer \(layer)")
        }
        try encodeTable(&graph, LlamaTensorNames.embedding, as: embeddings)
        try encodeTable(&graph, LlamaTensorNames.head, as: head)
        try record(layout, in: &graph.metadata)
    }

    /// Records the grid the matrices are put on (what `pack-weights` and the runtime read), in the
    /// graph's metadata or, at plan time, in what the plan says the pass records.
    func record(_ layout: SubspaceLayout, in metadata: inout Metadata) throws {
        var scheme = try QuantizationScheme(metadata: metadata)
        scheme.weights = WeightQuantizationRecord(
            method: method, bits: bits, highBits: highBits, hiddenHighColumns: layout.hiddenHigh,
            headHighColumns: layout.headHigh, groupSize: groupSize, tensors: Self.linearKinds,
            asymmetric: asymmetric ? true : nil, halfScales: halfScales ? true : nil,
            actOrderGroups: actOrder && groupSize != nil && method == "gptq" ? true : nil)
        try scheme.store(in: &metadata)
    }

    /// The calibrator's layer-by-layer walk, or an error saying the step needs one.
    static func layerwise(_ graph: ModelGraph, _ context: PassContext) throws -> any LayerwiseCalibration {
        guard let calibrator = context.calibrator else {
            throw LatheError.missingField(
                "calibration", in: "the recipe (sequential GPTQ runs the model: it needs a calibration section)")
        }
        return try calibrator.layerwise(graph, diagnostics: context.diagnostics)
    }

    static func hessianSite(_ kind: String) -> String {
        switch kind {
        case "self_attn.o_proj": "o_proj_input"
        case "mlp.gate_proj", "mlp.up_proj": "mlp_input"
        case "mlp.down_proj": "down_proj_input"
        default: "attn_input"
        }
    }

    /// Which input columns are high precision: the hidden tail for readers of the residual stream,
    /// each head's tail for o_proj, none for down_proj (its input is Hadamard-mixed, uniform).
    static func highColumns(_ kind: String, columns: Int, layout: SubspaceLayout, config: LlamaConfig) -> Set<Int> {
        switch kind {
        case "mlp.down_proj": return []
        case "self_attn.o_proj":
            let hd = config.headDim
            return Set((0..<(columns / hd)).flatMap { head in ((head + 1) * hd - layout.headHigh)..<((head + 1) * hd) })
        default:
            return Set((columns - layout.hiddenHigh)..<columns)
        }
    }

    /// One matrix on its grid: low columns first, then high (as the reference orders o_proj), each
    /// part cut into scale groups.
    func quantize(_ w: [Float], rows: Int, columns: Int, high: Set<Int>, hessian: [Double]?) throws -> [Float] {
        var low = (0..<columns).filter { !high.contains($0) }
        var highPart = (0..<columns).filter { high.contains($0) }
        if actOrder, let hessian {
            let diagonal = { (c: Int) in hessian[c * columns + c] }
            low.sort { diagonal($0) > diagonal($1) }
            highPart.sort { diagonal($0) > diagonal($1) }
        }
        var grid = ColumnGrid(
            bits: [Int](repeating: bits, count: columns), group: [Int](repeating: 0, count: columns), groupCount: 0,
            scales: [])
        var groups: [[Int]] = []
        for (part, partBits) in [(low, bits), (highPart, highBits)] where !part.isEmpty {
            let size = groupSize ?? part.count
            for start in stride(from: 0, to: part.count, by: size) {
                let members = Array(part[start..<min(start + size, part.count)])
                for c in members {
                    grid.bits[c] = partBits
                    grid.group[c] = groups.count
                }
                groups.append(members)
            }
        }
        grid.groupCount = groups.count
        grid.scales = [Float](repeating: 0, count: rows * groups.count)
        if asymmetric { grid.zeros = grid.scales }
        let fit: GPTQ.Fit = { [search, asymmetric, halfScales] values, bits in
            let (scale, zero) =
                asymmetric ? search.asymmetric(values, bits: bits) : (search.scale(values, bits: bits), 0)
            return (halfScales ? Self.halfScale(scale) : scale, zero)
        }
        // With groups, GPTQ fits each group's scales as it reaches the group (the reference's
        // order); one scale per row part is fitted here, to the original weights.
        let refit = groupSize == nil ? nil : fit
        if refit == nil {
            var buffer = [Float](repeating: 0, count: columns)
            for r in 0..<rows {
                for (g, members) in groups.enumerated() {
                    for (i, c) in members.enumerated() { buffer[i] = w[r * columns + c] }
                    let fitted = buffer.withUnsafeBufferPointer {
                        fit(UnsafeBufferPointer(rebasing: $0[0..<members.count]), grid.bits[members[0]])
                    }
                    grid.scales[r * groups.count + g] = fitted.scale
                    if asymmetric { grid.zeros[r * groups.count + g] = fitted.zero }
                }
            }
        }
        return try GPTQ.quantize(
            w, rows: rows, columns: columns, grid: grid, order: low + highPart, hessian: hessian,
            blockSize: blockSize, damping: damping, refit: refit)
    }

    /// `scale` rounded to the nearest F16, kept positive and finite (a grid needs a step).
    static func halfScale(_ scale: Float) -> Float {
        guard scale > 0 else { return scale }
        let rounded = Float(Float16(scale))
        if rounded == 0 { return Float(Float16.leastNonzeroMagnitude) }
        return rounded.isFinite ? rounded : Float(Float16.greatestFiniteMagnitude)
    }

    /// The embedding or head in a 16-bit float, or fake-quantized per row (absmax scale).
    func encodeTable(_ graph: inout ModelGraph, _ name: String, as choice: String) throws {
        guard choice != "keep", let tensor = graph[name] else { return }
        switch choice {
        case "f16": try graph.replace(TensorCodec.convert(tensor, to: .f16))
        case "bf16": try graph.replace(TensorCodec.convert(tensor, to: .bf16))
        default:
            let tableBits = choice == "int8" ? 8 : 4
            let (rows, columns) = try graph.matrixShape(name)
            var w = try graph.floats(name)
            w.withUnsafeMutableBufferPointer { p in
                for r in 0..<rows {
                    UniformQuantizer.symmetricAbsMax(p.baseAddress! + r * columns, count: columns, bits: tableBits)
                }
            }
            try graph.setFloats(name, w)
        }
    }
}

/// Results written by parallel workers, one slot each. `@unchecked Sendable`: the slots are only
/// touched under the lock.
final class ResultSlots: @unchecked Sendable {
    private var slots: [Result<[Float], any Error>?]
    private let lock = NSLock()

    init(count: Int) { slots = Array(repeating: nil, count: count) }

    func set(_ index: Int, _ body: () throws -> [Float]) {
        let result = Result { try body() }
        lock.withLock { slots[index] = result }
    }

    func get(_ index: Int) throws -> [Float] {
        guard let result = lock.withLock({ slots[index] }) else {
            // Every worker fills its slot before the pool returns: an empty one is Lathe's bug.
            preconditionFailure("quantize-weights: worker result \(index) was never set")
        }
        return try result.get()
    }
}

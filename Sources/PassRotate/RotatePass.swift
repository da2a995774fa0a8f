import LatheCore
import LinearAlgebra

/// `rotate`: orthogonal transforms fused into the weights wherever the model is invariant to them
/// (ResQ's U_A, U_B; QuaRot/SpinQuant's R1, R2), and the post-RoPE key rotation (U_C, R3), which
/// cannot be fused and is recorded for the runtime as a per-layer matrix.
///
/// With `basis: pca` each transform is the PCA basis from `pca-basis` times independent rotations
/// inside its low and high subspaces (`U = P · blockdiag(R_low, R_high)`); with `basis: none` it is
/// the rotation alone. One `R` for heads serves every layer, KV head, U_B and U_C, as in ResQ.
/// Norm weights must already be folded (`fuse-norms`): RMSNorm commutes only with unit weight.
public struct RotatePass: ModelPass {
    public struct Options: Codable, Sendable {
        /// random (default), hadamard or randomized-hadamard.
        public var kind: String?
        /// pca (default: needs pca-basis) or none.
        public var basis: String?
        /// Which transforms to apply (all by default).
        public var residual: Bool?
        public var values: Bool?
        public var keys: Bool?
        public var seed: UInt64?
    }

    public static let passID = "rotate"
    public static let summary =
        "fuse orthogonal rotations into the weights (residual, value/output) and record the online key rotation"

    let kind: RotationKind
    let usesBasis: Bool
    let residual: Bool
    let values: Bool
    let keys: Bool
    let seed: UInt64

    public init(options: Options) throws {
        guard let kind = RotationKind(rawValue: options.kind ?? "random") else {
            throw LatheError.invalidValue(
                field: "options of pass 'rotate': kind", value: options.kind ?? "",
                expected: "random, hadamard or randomized-hadamard")
        }
        self.kind = kind
        switch options.basis ?? "pca" {
        case "pca": usesBasis = true
        case "none": usesBasis = false
        default:
            throw LatheError.invalidValue(
                field: "options of pass 'rotate': basis", value: options.basis ?? "", expected: "pca or none")
        }
        residual = options.residual ?? true
        values = options.values ?? true
        keys = options.keys ?? true
        seed = options.seed ?? 0
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        // The rotations are block-diagonal over the low and high subspaces of the layout the
        // model will have then (from pca-basis, planned before this step), one matrix per block.
        let layout = try SubspaceLayout(metadata: graph.metadata)
        if kind != .random {
            let blocks = [
                config.hiddenSize - layout.hiddenHigh, layout.hiddenHigh, config.headDim - layout.headHigh,
                layout.headHigh,
            ]
            for n in blocks where n > 0 && !Hadamard.isSupported(n) {
                throw LatheError.invalidValue(
                    field: "options of pass 'rotate': kind", value: kind.rawValue,
                    expected:
                        "subspaces with Hadamard matrices (a block of \(n) has none: hidden \(config.hiddenSize) with \(layout.hiddenHigh) high, head \(config.headDim) with \(layout.headHigh) high); use kind: random"
                )
            }
        }
        var changed: [String] = []
        var notes: [String] = []
        if residual {
            changed += [LlamaTensorNames.embedding, LlamaTensorNames.head]
            for layer in 0..<config.layerCount { changed += Self.residualReaders(layer) + Self.residualWriters(layer) }
            notes.append("U_A (\(config.hiddenSize)×\(config.hiddenSize)) fused into embedding, head and every block")
        }
        if values {
            for layer in 0..<config.layerCount {
                changed += ["v_proj", "o_proj"].map { LlamaTensorNames.layerTensor(layer, "self_attn." + $0) }
            }
            notes.append("U_B per layer and KV head fused into v_proj rows and o_proj columns")
        }
        if keys {
            changed += (0..<config.layerCount).map { OnlineTransforms.queryKeyRotationTensor(layer: $0) }
            notes.append("U_C per layer applied online to q and k after RoPE")
        }
        // v_proj and o_proj are both residual readers/writers and U_B's: each is one tensor changed.
        var seen: Set<String> = []
        changed = changed.filter { seen.insert($0).inserted }
        let decisions = changed.compactMap { name -> TensorDecision? in
            guard let tensor = graph[name] else { return nil }
            return TensorDecision(tensor: name, from: tensor.info.dtype, to: .f32, reason: "rotated")
        }
        let largest = try graph.tensors.map { try $0.info.shape.elementCount() }.max() ?? 0
        var plan = PassPlan(
            changedTensors: changed, requires: usesBasis ? [SubspaceBasesArtifact.name] : [], notes: notes,
            decisions: decisions, peakBytes: 3 * largest * 8)
        if keys {
            plan.addedTensors = (0..<config.layerCount).map { OnlineTransforms.queryKeyRotationTensor(layer: $0) }
                .filter { graph[$0] == nil }
                .map { TensorInfo(name: $0, dtype: .f32, shape: [config.headDim, config.headDim]) }
        }
        if residual, graph[OnlineTransforms.residualRotationTensor] == nil {
            plan.addedTensors.append(
                TensorInfo(
                    name: OnlineTransforms.residualRotationTensor, dtype: .f32,
                    shape: [config.hiddenSize, config.hiddenSize]))
        }
        var recorded = layout
        if !usesBasis { recorded.basis = "none" }
        try recorded.store(in: &plan.recordedMetadata)
        if keys {
            var online = try OnlineTransforms(metadata: graph.metadata)
            online.queryKeyRotation = true
            try online.store(in: &plan.recordedMetadata)
        }
        return plan
    }

    /// U_A passes through every RMSNorm, which commutes with a rotation only when its weight is 1;
    /// rotating with the weights still in place would leave a model that runs and is wrong.
    static func requireUnitNorms(_ graph: ModelGraph, config: LlamaConfig) throws {
        let norms =
            (0..<config.layerCount).flatMap { layer in
                ["input_layernorm", "post_attention_layernorm"].map { LlamaTensorNames.layerTensor(layer, $0) }
            } + [LlamaTensorNames.finalNorm]
        for norm in norms where graph[norm] != nil {
            guard try graph.floats(norm).allSatisfy({ $0 == 1 }) else {
                throw LatheError.invalidValue(
                    field: "\(graph.source): \(norm)", value: "an RMSNorm weight other than 1",
                    expected: "folded norms before a residual rotation (add fuse-norms before rotate)")
            }
        }
    }

    static func residualReaders(_ layer: Int) -> [String] {
        let p = "model.layers.\(layer)."
        return ["q_proj", "k_proj", "v_proj"].map { p + "self_attn.\($0).weight" }
            + ["gate_proj", "up_proj"].map { p + "mlp.\($0).weight" }
    }

    static func residualWriters(_ layer: Int) -> [String] {
        [LlamaTensorNames.layerTensor(layer, "self_attn.o_proj"), LlamaTensorNames.layerTensor(layer, "mlp.down_proj")]
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        _ = try plan(graph)
        guard graph[LlamaTensorNames.head] != nil || !residual else {
            throw LatheError.missingField(
                LlamaTensorNames.head, in: "\(graph.source) (rotate needs an untied head: add untie-embeddings first)")
        }
        if residual { try Self.requireUnitNorms(graph, config: config) }
        let bases = usesBasis ? try context.require(SubspaceBasesArtifact.self, by: Self.passID) : nil
        let layout = try bases?.layout ?? SubspaceLayout(metadata: graph.metadata)
        let (hidden, hd) = (config.hiddenSize, config.headDim)
        // Drawn in a fixed order (residual low, high; head low, high) so a seed names one model.
        var generator = SeededGenerator(seed: seed)
        let residualRotation = try kind.blockDiagonal(hidden, high: layout.hiddenHigh, using: &generator)
        let headRotation = try kind.blockDiagonal(hd, high: layout.headHigh, using: &generator)
        func compose(_ basis: [Double]?, _ rotation: [Double], n: Int) -> [Double] {
            guard let basis else { return rotation }
            return Dense.multiply(basis, rotation, m: n, k: n, n: n)
        }
        // Shared with the context and updated in place, one site at a time.
        let statistics = context[CalibrationArtifact.self]

        if residual {
            let u = compose(bases?.residual, residualRotation, n: hidden)
            // Kept for verifiers (hidden states are now h·U); a second rotation composes with it.
            let name = OnlineTransforms.residualRotationTensor
            let recorded =
                graph[name] == nil
                ? u : Dense.multiply(try graph.floats(name).map(Double.init), u, m: hidden, k: hidden, n: hidden)
            try graph.setFloats(name, recorded.map(Float.init), shape: [hidden, hidden])
            for name in [LlamaTensorNames.embedding, LlamaTensorNames.head] {
                try graph.rotateInputs(name, by: u, n: hidden)
            }
            for layer in 0..<config.layerCount {
                for name in Self.residualReaders(layer) { try graph.rotateInputs(name, by: u, n: hidden) }
                for name in Self.residualWriters(layer) { try graph.rotateOutputs(name, by: u, n: hidden) }
                for site in ["attn_input", "mlp_input"] {
                    if var m = statistics?["\(site).\(layer)"] {
                        Dense.transform(&m, by: u)
                        statistics?["\(site).\(layer)"] = m
                    }
                }
                context.diagnostics.progress(
                    .transforming, fraction: Double(layer + 1) / Double(config.layerCount), "rotate: layer \(layer)")
            }
        }
        if values {
            for layer in 0..<config.layerCount {
                let perHead = (0..<config.kvHeadCount).map { head in
                    compose(bases?.values?[layer][head], headRotation, n: hd)
                }
                try rotateValues(&graph, layer: layer, perHead, config)
                if var m = statistics?["o_proj_input.\(layer)"] {
                    Dense.transform(&m, by: Self.blockDiagonal(perQueryHead: perHead, config))
                    statistics?["o_proj_input.\(layer)"] = m
                }
                for head in 0..<config.kvHeadCount {
                    if var m = statistics?["v_proj_output.\(layer).head\(head)"] {
                        Dense.transform(&m, by: perHead[head])
                        statistics?["v_proj_output.\(layer).head\(head)"] = m
                    }
                }
            }
        }
        if keys {
            var online = try OnlineTransforms(metadata: graph.metadata)
            for layer in 0..<config.layerCount {
                let u = compose(bases?.keys?[layer], headRotation, n: hd)
                let name = OnlineTransforms.queryKeyRotationTensor(layer: layer)
                // A second rotate composes with the rotation already recorded.
                let existing = graph[name] == nil ? nil : try graph.floats(name).map(Double.init)
                let combined = existing.map { Dense.multiply($0, u, m: hd, k: hd, n: hd) } ?? u
                try graph.setFloats(name, combined.map(Float.init), shape: [hd, hd])
                for head in 0..<config.kvHeadCount {
                    if var m = statistics?["k_rope.\(layer).head\(head)"] {
                        Dense.transform(&m, by: u)
                        statistics?["k_rope.\(layer).head\(head)"] = m
                    }
                }
            }
            online.queryKeyRotation = true
            try online.store(in: &graph.metadata)
        }
        var recorded = layout
        if !usesBasis { recorded.basis = "none" }
        try recorded.store(in: &graph.metadata)
    }

    /// U_B fused: `v` rows of KV head j ← U_jᵀ · rows; `o` columns of query head q ← columns · U_kv(q).
    func rotateValues(_ graph: inout ModelGraph, layer: Int, _ perHead: [[Double]], _ config: LlamaConfig) throws {
        let hd = config.headDim
        let vName = LlamaTensorNames.layerTensor(layer, "self_attn.v_proj")
        let oName = LlamaTensorNames.layerTensor(layer, "self_attn.o_proj")
        let (vRows, hidden) = try graph.matrixShape(vName)
        var v = try graph.floats(vName).map(Double.init)
        for head in 0..<(vRows / hd) {
            let block = Array(v[(head * hd * hidden)..<((head + 1) * hd * hidden)])
            let rotated = Dense.multiply(perHead[head], block, m: hd, k: hd, n: hidden, transA: true)
            v.replaceSubrange((head * hd * hidden)..<((head + 1) * hd * hidden), with: rotated)
        }
        try graph.setFloats(vName, v.map(Float.init))
        let (oRows, oColumns) = try graph.matrixShape(oName)
        let o = try graph.floats(oName).map(Double.init)
        let u = Self.blockDiagonal(perQueryHead: perHead, config)
        try graph.setFloats(oName, Dense.multiply(o, u, m: oRows, k: oColumns, n: oColumns).map(Float.init))
    }

    /// The `heads·head_dim` square block-diagonal matrix with query head q's block U_{q div group}
    /// (HF's repeat_kv grouping: contiguous query heads share a KV head).
    static func blockDiagonal(perQueryHead perHead: [[Double]], _ config: LlamaConfig) -> [Double] {
        let hd = config.headDim
        let n = config.headCount * hd
        var result = [Double](repeating: 0, count: n * n)
        for q in 0..<config.headCount {
            let block = perHead[q / config.groupSize]
            for r in 0..<hd {
                for c in 0..<hd { result[(q * hd + r) * n + q * hd + c] = block[r * hd + c] }
            }
        }
        return result
    }
}

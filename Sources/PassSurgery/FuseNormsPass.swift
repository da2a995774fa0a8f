import LatheCore

/// `fuse-norms`: folds every RMSNorm weight γ into the linear layers that read the norm's output
/// (`W ← W·diag(γ)`) and sets γ to 1, so the normalised activations are the very tensors later
/// passes rotate and quantize. RMSNorm with unit weight commutes with orthogonal maps, which is what
/// lets rotations be fused at all. Optionally centres each embedding row (the reference's habit,
/// not function-preserving for RMSNorm models, hence off by default).
public struct FuseNormsPass: ModelPass {
    public struct Options: Codable, Sendable {
        /// Subtract each token embedding's mean (QuaRot's LayerNorm-era step); default false.
        public var centerEmbeddings: Bool?
    }

    public static let passID = "fuse-norms"
    public static let summary = "fold RMSNorm weights into the following linear layers (norms become 1)"

    let centerEmbeddings: Bool

    public init(options: Options) {
        centerEmbeddings = options.centerEmbeddings ?? false
    }

    /// Each norm and the matrices whose input columns it scales.
    static func groups(_ config: LlamaConfig) -> [(norm: String, linears: [String])] {
        var groups: [(String, [String])] = []
        for layer in 0..<config.layerCount {
            let p = "model.layers.\(layer)."
            groups.append(
                (
                    p + "input_layernorm.weight",
                    ["q_proj", "k_proj", "v_proj"].map { p + "self_attn.\($0).weight" }
                ))
            groups.append(
                (p + "post_attention_layernorm.weight", ["gate_proj", "up_proj"].map { p + "mlp.\($0).weight" }))
        }
        groups.append((LlamaTensorNames.finalNorm, [LlamaTensorNames.head]))
        return groups
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        var changed: [String] = []
        var largest = 0
        for (norm, linears) in Self.groups(config) {
            guard graph[norm] != nil else { throw LatheError.unknownTensor(norm) }
            for linear in linears {
                guard let tensor = graph[linear] else {
                    throw LatheError.missingField(
                        linear, in: "\(graph.source) (fuse-norms needs an untied head: add untie-embeddings before it)")
                }
                largest = max(largest, try tensor.info.shape.elementCount() * 4)
            }
            changed += [norm] + linears
        }
        if centerEmbeddings { changed.append(LlamaTensorNames.embedding) }
        let decisions = try changed.map { name in
            TensorDecision(tensor: name, from: try graph.tensor(named: name).info.dtype, to: .f32, reason: "fused")
        }
        return PassPlan(
            changedTensors: changed, notes: centerEmbeddings ? ["embedding rows centred"] : [],
            decisions: decisions, peakBytes: 2 * largest)
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        _ = try plan(graph)
        for (norm, linears) in Self.groups(config) {
            let gamma = try graph.floats(norm).map(Double.init)
            for linear in linears {
                var w = try graph.floats(linear)
                let columns = gamma.count
                for i in w.indices { w[i] = Float(Double(w[i]) * gamma[i % columns]) }
                try graph.setFloats(linear, w)
            }
            try graph.setFloats(norm, [Float](repeating: 1, count: gamma.count))
        }
        if centerEmbeddings {
            let name = LlamaTensorNames.embedding
            var e = try graph.floats(name)
            let width = config.hiddenSize
            for row in stride(from: 0, to: e.count, by: width) {
                var mean = 0.0
                for j in row..<(row + width) { mean += Double(e[j]) }
                mean /= Double(width)
                for j in row..<(row + width) { e[j] = Float(Double(e[j]) - mean) }
            }
            try graph.setFloats(name, e)
        }
    }
}

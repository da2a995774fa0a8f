import LatheCore
import LinearAlgebra

/// How a model's q/k projections order the dimensions RoPE rotates together.
public enum RopeStyle: Sendable {
    /// HF: dimension i pairs with i + head_dim/2 (rotate-half).
    case halfSplit
    /// GGUF / Meta: dimensions 2i and 2i+1 pair.
    case interleaved
}

/// A Llama-family model's weights ready for the forward pass: projections in packed integer codes
/// (run by the low-bit kernels, read in place) when the file stores them so, F32 otherwise.
public struct LlamaWeights: Sendable {
    /// One block's weights. Projections that read the same input are stored stacked (q, k, v rows;
    /// gate, up rows) so each is one GEMM: fewer, larger GEMMs run closer to the machine's peak.
    public struct Layer: Sendable {
        public var attentionNorm: [Float]
        /// `[q; k; v]`: `(heads + 2·kvHeads)·headDim` rows of `hidden`.
        public var qkv: LinearWeight
        public var o: LinearWeight
        public var ffnNorm: [Float]
        /// `[gate; up]`: `2·ffn` rows of `hidden`.
        public var gateUp: LinearWeight
        public var down: LinearWeight
        /// U_C: the online rotation of q and k after RoPE (`head_dim × head_dim`, `x ← x·U`).
        public var queryKeyRotation: [Float]?
    }

    public var config: LlamaConfig
    public var ropeStyle: RopeStyle
    public var embedding: [Float]
    /// The output head; nil when tied to the embedding.
    public var output: LinearWeight?
    public var finalNorm: [Float]
    /// A GGUF's `rope_freqs.weight` (llama3 RoPE scaling as llama.cpp's converter writes it), used
    /// when the config does not describe the scaling itself.
    public var ropeDivisors: [Float]?
    public var layers: [Layer]
    /// Activation and KV-cache quantization the session simulates (empty: full precision).
    public var quantization: QuantizationScheme
    /// Transforms applied to activations on the fly (recorded by the rotation passes).
    public var online: OnlineTransforms
    /// U with hidden states = the original model's · U, when a rotation was fused (`hidden × hidden`).
    public var residualRotation: [Float]?

    public var outputHead: LinearWeight { output ?? .dense(embedding) }

    /// Bytes of every weight the forward pass reads (projections, head, norms; the embedding once).
    public var byteCount: Int {
        let perLayer = layers.reduce(0) { total, layer in
            total + layer.qkv.byteCount + layer.o.byteCount + layer.gateUp.byteCount + layer.down.byteCount
                + 4 * (layer.attentionNorm.count + layer.ffnNorm.count + (layer.queryKeyRotation?.count ?? 0))
        }
        return perLayer + 4 * (embedding.count + finalNorm.count) + (output?.byteCount ?? 0)
    }

    /// Decodes every tensor the forward pass needs from `graph` (any encoding the readers produce).
    /// Tensors are looked up by HF name, or by GGUF name when the graph is in GGUF layout, whose q/k
    /// order then selects interleaved RoPE. `lowBit: false` decodes packed projections to F32 (the
    /// simulated path, for comparisons). `layerByLayer: true` decodes only what a walk over the layers
    /// needs (no layers, which it takes one at a time with `withOnlyLayer(_:of:lowBit:)`, and no
    /// output head).
    public init(
        _ graph: ModelGraph, lowBit: Bool = true, layerByLayer: Bool = false, diagnostics: Diagnostics = .silent
    ) throws {
        guard let config = graph.config else {
            throw LatheError.missingField(
                "Llama config", in: "\(graph.source) (the runtime needs llama.* metadata or config.json)")
        }
        try config.validate()
        guard config.architecture == "llama" else {
            throw LatheError.notImplemented(
                capability: "running '\(config.architecture)' models", detail: "the runtime runs the Llama family")
        }
        if let scaling = config.ropeScaling, !["linear", "llama3", "none"].contains(scaling.type) {
            throw LatheError.notImplemented(
                capability: "RoPE scaling '\(scaling.type)'", detail: "supported: linear, llama3")
        }
        // Llama's projections have none; a model with `attention_bias` or `mlp_bias` would otherwise
        // run without its biases and give wrong logits without a word.
        if let bias = graph.tensorNames.first(where: { $0.hasSuffix(".bias") }) {
            throw LatheError.notImplemented(
                capability: "projection biases ('\(bias)')", detail: "the runtime runs Llama's bias-free layers")
        }
        self.config = config
        ropeStyle = graph.naming == .gguf ? .interleaved : .halfSplit
        let source = GraphTensors(graph: graph, config: config, lowBit: lowBit)
        let h = config.hiddenSize
        embedding = try source.load(LlamaTensorNames.embedding, [config.vocabSize, h])
        let hasOutput = graph[graph.naming == .gguf ? "output.weight" : LlamaTensorNames.head] != nil
        output = hasOutput && !layerByLayer ? try source.linear([(LlamaTensorNames.head, [config.vocabSize, h])]) : nil
        finalNorm = try source.load(LlamaTensorNames.finalNorm, [h])
        let frequencyTensor = LlamaConfig.RopeScaling.frequencyTensor
        ropeDivisors =
            graph[frequencyTensor] == nil ? nil : try source.load(frequencyTensor, [config.headDim / 2])
        residualRotation =
            graph[OnlineTransforms.residualRotationTensor] == nil
            ? nil : try source.load(OnlineTransforms.residualRotationTensor, [h, h])
        quantization = try QuantizationScheme(metadata: graph.metadata)
        online = try OnlineTransforms(metadata: graph.metadata)
        try Self.validate(quantization, online, config)
        layers = []
        guard !layerByLayer else { return }
        for i in 0..<config.layerCount {
            layers.append(try Self.layer(i, of: source, online: online))
            diagnostics.progress(.reading, fraction: Double(i + 1) / Double(config.layerCount), "decoded layer \(i)")
        }
    }

    /// These weights with only layer `index` of `graph` decoded, as a one-layer model: the session runs
    /// it on hidden states that earlier layers produced (calibration, one layer at a time).
    public func withOnlyLayer(_ index: Int, of graph: ModelGraph, lowBit: Bool = true) throws -> LlamaWeights {
        var single = self
        single.embedding = []
        single.output = nil
        single.layers = [
            try Self.layer(index, of: GraphTensors(graph: graph, config: config, lowBit: lowBit), online: online)
        ]
        single.config.layerCount = 1
        return single
    }

    /// One block's weights, decoded.
    static func layer(_ i: Int, of source: GraphTensors, online: OnlineTransforms) throws -> Layer {
        let config = source.config
        let (h, f) = (config.hiddenSize, config.ffnSize)
        let (qDim, kvDim) = (config.headCount * config.headDim, config.kvHeadCount * config.headDim)
        let p = "model.layers.\(i)."
        let rotationName = OnlineTransforms.queryKeyRotationTensor(layer: i)
        return Layer(
            attentionNorm: try source.load(p + "input_layernorm.weight", [h]),
            qkv: try source.linear([
                (p + "self_attn.q_proj.weight", [qDim, h]), (p + "self_attn.k_proj.weight", [kvDim, h]),
                (p + "self_attn.v_proj.weight", [kvDim, h]),
            ]),
            o: try source.linear([(p + "self_attn.o_proj.weight", [h, qDim])]),
            ffnNorm: try source.load(p + "post_attention_layernorm.weight", [h]),
            gateUp: try source.linear([(p + "mlp.gate_proj.weight", [f, h]), (p + "mlp.up_proj.weight", [f, h])]),
            down: try source.linear([(p + "mlp.down_proj.weight", [h, f])]),
            queryKeyRotation: online.queryKeyRotation
                ? try source.load(rotationName, [config.headDim, config.headDim]) : nil)
    }

    /// A graph's tensors looked up by HF name (GGUF name in GGUF layout) and checked against the config.
    struct GraphTensors {
        let graph: ModelGraph
        let config: LlamaConfig
        let lowBit: Bool

        func tensor(_ hfName: String, _ shape: [Int]) throws -> Tensor {
            let name = graph.naming == .gguf ? LlamaTensorNames.gguf(fromHF: hfName) : hfName
            let tensor = try graph.tensor(named: name)
            guard tensor.info.shape.dimensions == shape else {
                throw LatheError.inTensor(
                    name,
                    .invalidShape(tensor.info.shape.dimensions, reason: "expected \(Shape(shape)) for this config"))
            }
            return tensor
        }

        func load(_ hfName: String, _ shape: [Int]) throws -> [Float] {
            try TensorCodec.decodeReleasingPages(tensor(hfName, shape))
        }

        func linear(_ parts: [(String, [Int])]) throws -> LinearWeight {
            try LinearWeight.stacked(parts.map { try tensor($0.0, $0.1) }, lowBit: lowBit)
        }
    }

    /// Refuses schemes the session could not apply to this model's shapes.
    static func validate(_ scheme: QuantizationScheme, _ online: OnlineTransforms, _ config: LlamaConfig) throws {
        try scheme.validate(for: config)
        if let order = online.downProjectionHadamard, order != config.ffnSize || !Hadamard.isSupported(order) {
            throw LatheError.invalidValue(
                field: "metadata \(OnlineTransforms.metadataKey): downProjectionHadamard", value: "\(order)",
                expected: "the FFN size \(config.ffnSize), with a Hadamard matrix of that order")
        }
    }
}

import LatheCore

/// `quantize-kv`: the KV cache stored quantized per (token, KV head), asymmetric, with each head's
/// last `headHigh` coordinates (the top PCA directions of U_B / U_C) at `highBits`. Values are
/// quantized at the value projection's output (range without 0), keys after RoPE and the online key
/// rotation (range with 0). When the model has that rotation, it is itself rounded to per-tensor
/// INT8 and its q/k input quantized to `queryKeyBits` per (token, head), as an integer kernel runs it.
public struct QuantizeKVPass: ModelPass {
    public struct Options: Codable, Sendable {
        public var bits: Int?
        public var highBits: Int?
        /// Bits of q and k before the online key rotation, and of the rotation matrix (default 8; 0: off).
        public var rotationBits: Int?
    }

    public static let passID = "quantize-kv"
    public static let summary = "quantize the KV cache per (token, head), low/high subspace groups, run by the runtime"

    let bits: Int
    let highBits: Int
    let rotationBits: Int

    public init(options: Options) throws {
        bits = options.bits ?? 4
        highBits = options.highBits ?? 8
        rotationBits = options.rotationBits ?? 8
        guard (2...16).contains(bits), (2...16).contains(highBits), rotationBits == 0 || (2...16).contains(rotationBits)
        else {
            throw LatheError.invalidValue(
                field: "options of pass 'quantize-kv': bits", value: "\(bits)/\(highBits)/\(rotationBits)",
                expected: "2 to 16 (rotationBits 0 turns the rotation's quantization off)")
        }
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        let layout = try SubspaceLayout(metadata: graph.metadata)
        let online = try OnlineTransforms(metadata: graph.metadata)
        var notes = [
            "K and V: \(bits) bit per (token, head), last \(layout.headHigh) of \(config.headDim) at \(highBits) bit"
        ]
        var changed: [String] = []
        if online.queryKeyRotation, rotationBits > 0 {
            changed = (0..<config.layerCount).map { OnlineTransforms.queryKeyRotationTensor(layer: $0) }
            notes.append(
                "key rotation rounded to INT\(rotationBits) per tensor; q, k quantized to \(rotationBits) bit before it"
            )
        }
        return PassPlan(changedTensors: changed, notes: notes)
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        let layout = try SubspaceLayout(metadata: graph.metadata)
        let online = try OnlineTransforms(metadata: graph.metadata)
        var scheme = try QuantizationScheme(metadata: graph.metadata)
        scheme.keys = ActivationQuantizer(
            bits: bits, highBits: highBits, highCount: layout.headHigh, groupSize: config.headDim, includeZero: true)
        scheme.values = ActivationQuantizer(
            bits: bits, highBits: highBits, highCount: layout.headHigh, groupSize: config.headDim, includeZero: false)
        if online.queryKeyRotation, rotationBits > 0 {
            scheme.queryKeyBits = rotationBits
            for layer in 0..<config.layerCount {
                let name = OnlineTransforms.queryKeyRotationTensor(layer: layer)
                var u = try graph.floats(name)
                // The reference's per-tensor INT8 weight quantizer (levels −128…127).
                u.withUnsafeMutableBufferPointer {
                    UniformQuantizer.symmetricAbsMax($0.baseAddress!, count: $0.count, bits: rotationBits)
                }
                try graph.setFloats(name, u)
            }
        }
        try scheme.store(in: &graph.metadata)
    }
}

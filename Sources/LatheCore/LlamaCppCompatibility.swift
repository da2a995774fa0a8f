/// What of a Lathe model llama.cpp can run from a GGUF file. Rotations fused into weights are
/// ordinary weights to it; transforms applied to activations at run time, and Lathe's activation
/// and KV quantization, have no GGUF or ggml representation.
public struct LlamaCppCompatibility: Sendable, Equatable {
    /// Transforms without which the weights compute a different function: llama.cpp would run a
    /// broken model.
    public var blocking: [String] = []
    /// Simulated quantization llama.cpp does not apply (it runs the weight-quantized model).
    public var ignored: [String] = []
    /// Lathe's own tensors a llama.cpp file must not carry (its loader rejects unknown tensors).
    public var extraTensors: [String] = []

    public var isFullyRepresentable: Bool { blocking.isEmpty && ignored.isEmpty }

    /// From a model's metadata records, tensor names and config.
    public init(metadata: Metadata, tensorNames: [String], config: LlamaConfig? = nil) throws(LatheError) {
        let online = try OnlineTransforms(metadata: metadata)
        if let order = online.downProjectionHadamard {
            blocking.append("U_D, the online Hadamard (order \(order)) before down_proj")
        }
        if online.queryKeyRotation { blocking.append("U_C, the online q/k rotation after RoPE") }
        let scheme = try QuantizationScheme(metadata: metadata)
        for site in scheme.activations.keys.sorted() { ignored.append("activation quantization at \(site)") }
        if scheme.keys != nil || scheme.values != nil { ignored.append("KV-cache quantization") }
        if let scaling = config?.ropeScaling, scaling.type != "llama3",
            !LlamaConfig.RopeScaling.llamaCppTypes.contains(scaling.type)
        {
            // Kept in Lathe's keys for the way back; llama.cpp's converter leaves it out too.
            ignored.append("RoPE scaling '\(scaling.type)' (llama.cpp has no such type and runs without it)")
        }
        extraTensors = tensorNames.filter(OnlineTransforms.isTransformTensor)
    }

    /// One line per finding, for plans and warnings.
    public var summary: String {
        var parts: [String] = []
        if !blocking.isEmpty { parts.append("not representable: " + blocking.joined(separator: "; ")) }
        if !ignored.isEmpty {
            parts.append("ignored by llama.cpp (weights-only run): " + ignored.joined(separator: "; "))
        }
        return parts.isEmpty ? "every transform is fused into the weights" : parts.joined(separator: "; ")
    }
}

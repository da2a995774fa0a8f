import LatheCore
import LinearAlgebra

/// `online-hadamard`: U_D, the normalised Hadamard transform of the down projection's input
/// (`had_K ⊗ H_2^m`, FFN size = K·2^m). Its weight side is fused (`W_down ← W_down · U_D`); the
/// activation side is recorded for the runtime, which applies the fast transform to each token's
/// `silu(gate) · up` before the down projection (and before its quantizer).
public struct OnlineHadamardPass: ModelPass {
    public struct Options: Codable, Sendable {}

    public static let passID = "online-hadamard"
    public static let summary =
        "Hadamard transform of the down projection's input: fused in the weight, online in the runtime"

    public init(options: Options) {}

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        guard let (base, power) = Hadamard.factorization(of: config.ffnSize) else {
            throw LatheError.invalidValue(
                field: "FFN size", value: "\(config.ffnSize)",
                expected:
                    "K·2^m with K in {\(Hadamard.supportedBaseOrders.map(String.init).joined(separator: ", "))} for an online Hadamard"
            )
        }
        if try OnlineTransforms(metadata: graph.metadata).downProjectionHadamard != nil {
            throw LatheError.invalidValue(
                field: "pass 'online-hadamard'", value: "a model that already has it", expected: "one application")
        }
        let names = (0..<config.layerCount).map { LlamaTensorNames.layerTensor($0, "mlp.down_proj") }
        let decisions = try names.map {
            TensorDecision(tensor: $0, from: try graph.tensor(named: $0).info.dtype, to: .f32, reason: "Hadamard fused")
        }
        var plan = PassPlan(
            changedTensors: names,
            notes: ["U_D = had\(base) ⊗ H\(power) / √\(config.ffnSize), online before down_proj"],
            decisions: decisions, peakBytes: config.hiddenSize * config.ffnSize * 4)
        var online = try OnlineTransforms(metadata: graph.metadata)
        online.downProjectionHadamard = config.ffnSize
        try online.store(in: &plan.recordedMetadata)
        return plan
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        _ = try plan(graph)
        let f = config.ffnSize
        let transform = try HadamardPlan(order: f)
        let scale = 1 / Float(f).squareRoot()
        // Shared with the context and updated in place, one site at a time.
        let statistics = context[CalibrationArtifact.self]
        for layer in 0..<config.layerCount {
            // Each row w of W_down becomes w · U_D = (M wᵀ)ᵀ / √f: the same fast transform.
            let name = LlamaTensorNames.layerTensor(layer, "mlp.down_proj")
            var w = try graph.floats(name)
            try w.withUnsafeMutableBufferPointer { try transform.apply(to: $0, scale: scale) }
            try graph.setFloats(name, w)
            if var m = statistics?["down_proj_input.\(layer)"] {
                try Self.transform(&m, transform, scale: scale)
                statistics?["down_proj_input.\(layer)"] = m
            }
        }
        var online = try OnlineTransforms(metadata: graph.metadata)
        online.downProjectionHadamard = f
        try online.store(in: &graph.metadata)
    }

    /// Statistics of `x · U_D`: `U_Dᵀ M U_D = H M Hᵀ / f`, by transforming rows, transposing, and
    /// transforming rows again (M is symmetric).
    static func transform(_ moments: inout ActivationMoments, _ plan: HadamardPlan, scale: Float) throws {
        let n = moments.width
        var m = moments.secondMoment.map(Float.init)
        try m.withUnsafeMutableBufferPointer { try plan.apply(to: $0, scale: scale) }
        var transposed = [Float](repeating: 0, count: n * n)
        for r in 0..<n {
            for c in 0..<n { transposed[c * n + r] = m[r * n + c] }
        }
        try transposed.withUnsafeMutableBufferPointer { try plan.apply(to: $0, scale: scale) }
        moments.secondMoment = transposed.map(Double.init)
        var sum = moments.sum.map(Float.init)
        try sum.withUnsafeMutableBufferPointer { try plan.apply(to: $0, scale: scale) }
        moments.sum = sum.map(Double.init)
    }
}

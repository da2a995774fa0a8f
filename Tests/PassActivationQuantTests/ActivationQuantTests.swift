import LatheCore
import LatheTestSupport
import Testing

@testable import PassActivationQuant

@Suite("quantize-activations and quantize-kv")
struct ActivationQuantTests {
    @Test("the recorded quantizers follow the subspace layout: tails per token, per head at o_proj and in the cache")
    func layout() throws {
        var graph = try TinyModel.graph()
        try SubspaceLayout(hiddenHigh: 8, headHigh: 2, basis: "pca").store(in: &graph.metadata)
        var context = PassContext()
        try QuantizeActivationsPass(options: .init()).apply(&graph, context: &context)
        try QuantizeKVPass(options: .init(bits: 3)).apply(&graph, context: &context)
        let scheme = try QuantizationScheme(metadata: graph.metadata)
        #expect(scheme.activations["attn_input"] == ActivationQuantizer(bits: 4, highCount: 8, includeZero: true))
        #expect(
            scheme.activations["o_proj_input"]
                == ActivationQuantizer(bits: 4, highCount: 2, groupSize: 16, includeZero: false))
        #expect(scheme.activations["down_proj_input"]?.highCount == 0)
        #expect(scheme.keys == ActivationQuantizer(bits: 3, highCount: 2, groupSize: 16, includeZero: true))
        #expect(scheme.values?.includeZero == false)
        #expect(scheme.queryKeyBits == nil)  // no key rotation in this model
    }

    @Test("with a key rotation, quantize-kv rounds it to per-tensor INT8 (127 levels of its largest entry)")
    func rotationRounded() throws {
        var graph = try TinyModel.graph()
        let name = OnlineTransforms.queryKeyRotationTensor(layer: 0)
        let u = (0..<256).map { Float($0 % 17) / 17 - 0.4 }
        for layer in 0..<2 {
            try graph.setFloats(OnlineTransforms.queryKeyRotationTensor(layer: layer), u, shape: [16, 16])
        }
        try OnlineTransforms(queryKeyRotation: true).store(in: &graph.metadata)
        var context = PassContext()
        try QuantizeKVPass(options: .init()).apply(&graph, context: &context)
        let scale = u.map(abs).max()! / 127
        let rounded = try graph.floats(name)
        #expect(rounded.allSatisfy { v in abs(v / scale - (v / scale).rounded()) < 1e-3 })
        #expect(try QuantizationScheme(metadata: graph.metadata).queryKeyBits == 8)
    }
}

import LatheCore
import LatheTestSupport
import Testing

@testable import PassSurgery

@Suite("untie-embeddings and fuse-norms")
struct SurgeryTests {
    @Test("untying copies the embedding into lm_head and the plan announces the new tensor")
    func untie() throws {
        var graph = try TinyModel.graph()
        let pass = UntieEmbeddingsPass(options: .init())
        #expect(try pass.plan(graph).addedTensors.map(\.name) == ["lm_head.weight"])
        var context = PassContext()
        try pass.apply(&graph, context: &context)
        #expect(try graph.floats("lm_head.weight") == graph.floats("model.embed_tokens.weight"))
        #expect(graph.config?.tiedEmbeddings == false)
        #expect(try pass.plan(graph).addedTensors.isEmpty)
    }

    @Test("fusion scales each input column by γ (1e-6 relative), sets γ to 1, and needs an untied head")
    func fuse() throws {
        var graph = try TinyModel.graph()
        var context = PassContext()
        #expect(throws: (any Error).self) { try FuseNormsPass(options: .init()).plan(graph) }
        try UntieEmbeddingsPass(options: .init()).apply(&graph, context: &context)
        let before = graph
        try FuseNormsPass(options: .init()).apply(&graph, context: &context)
        let gamma = try before.floats("model.layers.1.post_attention_layernorm.weight")
        let w = try before.floats("model.layers.1.mlp.up_proj.weight")
        let fused = try graph.floats("model.layers.1.mlp.up_proj.weight")
        for i in w.indices { #expect(isClose(fused[i], w[i] * gamma[i % gamma.count], relative: 1e-6)) }
        #expect(try graph.floats("model.layers.1.post_attention_layernorm.weight").allSatisfy { $0 == 1 })
        #expect(try graph.floats("model.norm.weight").allSatisfy { $0 == 1 })
        // The embedding is untouched unless centring is asked for; then every row has mean 0.
        #expect(try graph.floats("model.embed_tokens.weight") == before.floats("model.embed_tokens.weight"))
        var centred = before
        try FuseNormsPass(options: .init(centerEmbeddings: true)).apply(&centred, context: &context)
        let e = try centred.floats("model.embed_tokens.weight")
        let width = 64
        #expect(e.count % width == 0 && e.count > width)
        for row in stride(from: 0, to: e.count, by: width) {
            let mean = e[row..<(row + width)].reduce(Float(0), +) / Float(width)
            #expect(abs(mean) < 1e-6, "row \(row / width)")
        }
    }
}

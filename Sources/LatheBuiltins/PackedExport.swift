import LatheCore
import PassEncoding

/// What `lathe convert` does before writing lpack: the matrices a recipe quantized are packed
/// (the `pack-weights` pass), so a safetensors or GGUF input holding a recipe's output, or a recipe
/// run straight into lpack, ends up as integer codes.
public enum PackedExport {
    public static func pack(_ graph: ModelGraph, diagnostics: Diagnostics) throws -> ModelGraph {
        var graph = graph
        let pass = try PackWeightsPass(options: .init())
        let plan = try pass.plan(graph)
        guard !plan.decisions.isEmpty else { return graph }
        var context = PassContext(diagnostics: diagnostics)
        try pass.apply(&graph, context: &context)
        diagnostics.info("lpack: \(plan.decisions.count) matrices packed as int4/int8 codes with per-row scales")
        return graph
    }
}

import LatheCore

/// Multiplies every RMSNorm weight (the 1-D tensors whose name ends in `norm.weight`) by a factor:
/// a minimal pass that shows the plugin interface end to end.
struct ScaleNormsPass: ModelPass {
    struct Options: Codable, Sendable {
        var factor: Float
    }

    static let passID = "scale-norms"
    static let summary = "example plugin: multiply every RMSNorm weight by a factor"

    let factor: Float

    init(options: Options) throws {
        guard options.factor.isFinite, options.factor != 0 else {
            throw LatheError.invalidValue(
                field: "options of pass 'scale-norms': factor", value: "\(options.factor)",
                expected: "a finite, non-zero number")
        }
        factor = options.factor
    }

    func plan(_ graph: ModelGraph) throws -> PassPlan {
        let norms = graph.tensors.filter { $0.info.shape.rank == 1 && $0.name.hasSuffix("norm.weight") }
        return PassPlan(
            changedTensors: norms.map(\.name),
            decisions: norms.map { TensorDecision(tensor: $0.name, from: $0.info.dtype, to: .f32, reason: Self.passID) }
        )
    }

    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        for name in try plan(graph).changedTensors {
            let tensor = try graph.tensor(named: name)
            let scaled = try TensorCodec.decode(tensor).map { $0 * factor }
            try graph.replace(
                Tensor(
                    info: TensorInfo(name: name, dtype: .f32, shape: tensor.info.shape),
                    storage: TensorStorage(values: scaled)))
        }
    }
}

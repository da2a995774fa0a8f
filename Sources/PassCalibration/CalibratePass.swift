import LatheCore

/// `calibrate`: runs the model as it stands at this step on the recipe's calibration text and makes
/// the activation statistics (Σxxᵀ per site, layer and KV head, Float64) available to later passes.
/// Placed after norm fusion, the statistics describe the tensors later passes quantize; passes that
/// rotate a site keep its statistics in step, so one calibration serves both PCA and GPTQ.
public struct CalibratePass: ModelPass {
    public struct Options: Codable, Sendable {}

    public static let passID = "calibrate"
    public static let summary = "collect activation statistics of the model at this step (needs calibration text)"

    public init(options: Options) {}

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        _ = try graph.llamaConfig()
        return PassPlan(produces: [CalibrationArtifact.name], notes: ["runs the model on the calibration windows"])
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        guard let calibrator = context.calibrator else {
            throw LatheError.missingField(
                "calibration", in: "the recipe (pass 'calibrate' needs a calibration section naming the text)")
        }
        context[CalibrationArtifact.self] = try calibrator.statistics(of: graph, diagnostics: context.diagnostics)
    }
}

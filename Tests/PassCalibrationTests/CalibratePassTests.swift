import LatheCore
import LatheTestSupport
import Testing

@testable import PassCalibration

struct FixedCalibrator: Calibrator {
    func statistics(of graph: ModelGraph, diagnostics: Diagnostics) throws -> CalibrationMoments {
        var m = ActivationMoments(width: 2)
        m.count = graph.tensors.count
        return CalibrationMoments(["attn_input.0": m])
    }
}

@Suite("calibrate")
struct CalibratePassTests {
    @Test("without calibration text it is an error naming the recipe section; with it, the statistics are stored")
    func calibrate() throws {
        var graph = try TinyModel.graph()
        let pass = CalibratePass(options: .init())
        #expect(try pass.plan(graph).produces == [CalibrationArtifact.name])
        var context = PassContext()
        do {
            try pass.apply(&graph, context: &context)
            Issue.record("expected an error")
        } catch let error as LatheError {
            #expect(error.errorDescription?.contains("calibration section") == true)
        }
        context.calibrator = FixedCalibrator()
        try pass.apply(&graph, context: &context)
        #expect(context[CalibrationArtifact.self]?["attn_input.0"]?.count == graph.tensors.count)
    }
}

/// Runs a model on calibration text and returns activation statistics of the graph as it is now.
/// The command line provides one (backed by the runtime) to passes through `PassContext`, so a pass
/// can calibrate the model it sees without importing the runtime.
public protocol Calibrator: Sendable {
    func statistics(of graph: ModelGraph, diagnostics: Diagnostics) throws -> CalibrationMoments
    /// Starts a walk over the calibration windows one layer at a time, from `graph`'s embedding:
    /// what sequential GPTQ needs (each layer's inputs come from the layers before it as they are
    /// after quantization).
    func layerwise(_ graph: ModelGraph, diagnostics: Diagnostics) throws -> any LayerwiseCalibration
}

extension Calibrator {
    public func layerwise(_ graph: ModelGraph, diagnostics: Diagnostics) throws -> any LayerwiseCalibration {
        throw LatheError.notImplemented(
            capability: "layer-by-layer calibration", detail: "this calibrator only collects whole-model statistics")
    }
}

/// The calibration windows' hidden states between two layers, advanced one layer at a time.
public protocol LayerwiseCalibration: AnyObject {
    /// Statistics of layer `layer`'s sites (keys `site.layer…`) as `graph`'s layer computes them now,
    /// on the current hidden states; the states do not move.
    func statistics(ofLayer layer: Int, in graph: ModelGraph) throws -> [String: ActivationMoments]
    /// Moves the hidden states through layer `layer` of `graph` as it is now.
    func advance(throughLayer layer: Int, of graph: ModelGraph) throws
}

/// Orthogonal bases of the activation spaces, sorted by ascending variance (the high-precision
/// subspace is the tail), produced by `pca-basis` for `rotate`. Matrices are row-major with the
/// basis vectors as columns.
public struct SubspaceBases: Sendable {
    /// `hidden × hidden`, shared by all layers (U_A's PCA part).
    public var residual: [Double]?
    /// Per layer and KV head, `head_dim × head_dim` (U_B's PCA part).
    public var values: [[[Double]]]?
    /// Per layer, `head_dim × head_dim` (U_C's PCA part).
    public var keys: [[Double]]?
    /// Eigenvalues, ascending, per site key (`residual`, `values.L.headH`, `keys.L`), for reports.
    public var spectra: [String: [Double]]
    public var layout: SubspaceLayout

    public init(
        residual: [Double]?, values: [[[Double]]]?, keys: [[Double]]?, spectra: [String: [Double]],
        layout: SubspaceLayout
    ) {
        self.residual = residual
        self.values = values
        self.keys = keys
        self.spectra = spectra
        self.layout = layout
    }
}

public enum SubspaceBasesArtifact: PassArtifactKey {
    public typealias Value = SubspaceBases
    public static let name = "subspace-bases"
}

/// Second moments of activations at one site (and KV head): Σ xxᵀ, Σ x and the number of rows, in
/// Float64. Collected by the runtime's calibration, consumed by passes (PCA bases, GPTQ Hessians).
public struct ActivationMoments: Sendable, Equatable {
    public var width: Int
    /// Row-major `width × width`.
    public var secondMoment: [Double]
    public var sum: [Double]
    public var count: Int

    public init(width: Int) {
        self.width = width
        secondMoment = [Double](repeating: 0, count: width * width)
        sum = [Double](repeating: 0, count: width)
        count = 0
    }

    /// Σ xxᵀ / n (uncentred, as the rotation methods use it).
    public var meanSecondMoment: [Double] { secondMoment.map { $0 / Double(max(count, 1)) } }
}

/// The calibration statistics of a pipeline run, keyed `site.layer` or `site.layer.headH`.
public enum CalibrationArtifact: PassArtifactKey {
    public typealias Value = [String: ActivationMoments]
    public static let name = "calibration"
}

import Foundation

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
    public typealias Value = CalibrationMoments
    public static let name = "calibration"
}

/// Calibration statistics by key, held in memory or, given a spill store, each site's matrices in a
/// spill file read back when a pass asks for them. A deep model's statistics (a `width × width`
/// Float64 matrix per site and layer) then never sit in memory all at once: calibration moves each
/// layer's statistics out as soon as that layer is done, and passes take them one site at a time.
/// Passes share one instance through the pipeline's context and update entries in place.
public final class CalibrationMoments: @unchecked Sendable {
    private enum Entry {
        case memory(ActivationMoments)
        /// `secondMoment` then `sum`, as Float64, in a mapped spill file.
        case spilled(width: Int, count: Int, storage: TensorStorage)
    }

    public let spill: SpillStore?
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]

    public init(_ moments: [String: ActivationMoments] = [:], spill: SpillStore? = nil) {
        self.spill = spill
        for (key, value) in moments { self[key] = value }
    }

    public var keys: [String] { lock.withLock { entries.keys.sorted() } }
    public var count: Int { lock.withLock { entries.count } }

    /// Every entry, read back into memory (tests, and writing a statistics file).
    public var all: [String: ActivationMoments] {
        Dictionary(uniqueKeysWithValues: keys.compactMap { key in self[key].map { (key, $0) } })
    }

    public subscript(key: String) -> ActivationMoments? {
        get {
            guard let entry = lock.withLock({ entries[key] }) else { return nil }
            switch entry {
            case .memory(let moments): return moments
            case .spilled(let width, let count, let storage):
                var moments = ActivationMoments(width: width)
                moments.count = count
                storage.withUnsafeBytes { raw in
                    let values = raw.bindMemory(to: Double.self)
                    moments.secondMoment = Array(values[0..<(width * width)])
                    moments.sum = Array(values[(width * width)..<(width * width + width)])
                }
                storage.dropCachedPages()
                return moments
            }
        }
        set {
            let entry = newValue.map { moments -> Entry in
                // A spill that fails (a full disk) keeps the entry in memory rather than losing it.
                guard let spill, let storage = try? spill.store(moments.secondMoment + moments.sum) else {
                    return .memory(moments)
                }
                return storage.isMapped
                    ? .spilled(width: moments.width, count: moments.count, storage: storage) : .memory(moments)
            }
            lock.withLock { entries[key] = entry }
        }
    }
}

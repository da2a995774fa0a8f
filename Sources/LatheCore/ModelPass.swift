/// A typed key for an artifact that one pass produces and a later pass consumes (a PCA basis, a
/// calibration statistic). The key type names its value type, so no casts appear at use sites.
public protocol PassArtifactKey {
    associatedtype Value: Sendable
    /// A stable name for plans and error messages.
    static var name: String { get }
}

/// The shared state passes read and write while a pipeline runs.
public struct PassContext: Sendable {
    private var artifacts: [ObjectIdentifier: any Sendable] = [:]
    public var diagnostics: Diagnostics
    /// Seed for everything random in the pipeline; each pass derives its own stream from it.
    public var seed: UInt64
    /// Runs the model on calibration text, when the pipeline has text to calibrate on.
    public var calibrator: (any Calibrator)?
    /// The formats and passes of the run, for a pass that must write or read a format without
    /// importing it (`external` exchanges tensors as safetensors).
    public var registry: Registry?

    public init(seed: UInt64 = 0, diagnostics: Diagnostics = .silent, calibrator: (any Calibrator)? = nil) {
        self.seed = seed
        self.diagnostics = diagnostics
        self.calibrator = calibrator
    }

    public subscript<Key: PassArtifactKey>(key: Key.Type) -> Key.Value? {
        get { artifacts[ObjectIdentifier(key)] as? Key.Value }
        set { artifacts[ObjectIdentifier(key)] = newValue }
    }

    /// The artifact, or an error saying which earlier pass should have produced it.
    public func require<Key: PassArtifactKey>(_ key: Key.Type, by passID: String) throws(LatheError) -> Key.Value {
        guard let value = self[key] else {
            throw .missingField(
                Key.name, in: "the pipeline context (needed by pass '\(passID)'; add the pass that produces it earlier)"
            )
        }
        return value
    }
}

/// One tensor's fate in a pass: its encoding before and after, and why.
public struct TensorDecision: Sendable, Equatable {
    public var tensor: String
    public var from: DType
    public var to: DType
    public var reason: String

    public init(tensor: String, from: DType, to: DType, reason: String) {
        self.tensor = tensor
        self.from = from
        self.to = to
        self.reason = reason
    }
}

/// What a pass will do, computed without changing anything.
public struct PassPlan: Sendable, Equatable {
    /// Names of the tensors the pass rewrites, adds or removes.
    public var changedTensors: [String]
    /// Artifact names the pass needs from earlier passes.
    public var requires: [String]
    /// Artifact names the pass makes available to later passes.
    public var produces: [String]
    /// Human-readable per-layer decisions.
    public var notes: [String]
    /// Per-tensor encoding decisions (the planner applies them to its shadow graph).
    public var decisions: [TensorDecision]
    /// Tensors the pass leaves alone although the options named them, with the reason.
    public var skipped: [String]
    /// The most memory the pass holds at once beyond the mapped inputs, in bytes (an estimate).
    public var peakBytes: Int
    /// Tensors the pass adds (the planner adds them to its shadow of the model).
    public var addedTensors: [TensorInfo] = []
    /// Metadata records the pass will write that later steps read (the subspace layout, the online
    /// transforms): the planner sets them on its shadow, so a later step plans on what it will see.
    public var recordedMetadata = Metadata()

    public init(
        changedTensors: [String] = [], requires: [String] = [], produces: [String] = [], notes: [String] = [],
        decisions: [TensorDecision] = [], skipped: [String] = [], peakBytes: Int = 0
    ) {
        self.changedTensors = changedTensors
        self.requires = requires
        self.produces = produces
        self.notes = notes
        self.decisions = decisions
        self.skipped = skipped
        self.peakBytes = peakBytes
    }
}

/// A model transformation. `plan` is a preflight that must not mutate; `apply` does the work.
public protocol ModelPass: Sendable {
    associatedtype Options: Codable & Sendable
    static var passID: String { get }
    static var summary: String { get }

    init(options: Options) throws
    func plan(_ graph: ModelGraph) throws -> PassPlan
    func apply(_ graph: inout ModelGraph, context: inout PassContext) throws
}

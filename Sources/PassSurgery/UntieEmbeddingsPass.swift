import LatheCore

/// `untie-embeddings`: gives the output head its own copy of the token embedding, so passes can
/// transform the two differently (norm fusion scales only the head; centring touches only the
/// embedding). A model that already has a head is left as it is.
public struct UntieEmbeddingsPass: ModelPass {
    public struct Options: Codable, Sendable {}

    public static let passID = "untie-embeddings"
    public static let summary = "copy a tied token embedding into its own output head (lm_head)"

    static let embedding = LlamaTensorNames.embedding
    static let head = LlamaTensorNames.head

    public init(options: Options) {}

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        guard graph[Self.head] == nil else {
            return PassPlan(notes: ["the model already has its own output head; nothing to untie"])
        }
        var info = try graph.tensor(named: Self.embedding).info
        info.name = Self.head
        var plan = PassPlan(changedTensors: [Self.head], notes: ["lm_head.weight copied from the embedding"])
        plan.addedTensors = [info]
        return plan
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        guard graph[Self.head] == nil else { return }
        let embedding = try graph.tensor(named: Self.embedding)
        var head = embedding
        head.info.name = Self.head
        try graph.append(head)
        graph.config?.tiedEmbeddings = false
    }
}

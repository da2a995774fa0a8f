/// Orthogonal transforms the runtime applies to activations as it runs, because they cannot be
/// fused into weights. Recorded in metadata (`lathe.online_transforms`); dense matrices live in
/// tensors named by `queryKeyRotationTensor(layer:)`.
public struct OnlineTransforms: Codable, Sendable, Equatable {
    public static let metadataKey = "lathe.online_transforms"

    /// The down projection's input is multiplied by the normalised Hadamard matrix of this order
    /// (`(had_K ⊗ H_2^m)ᵀ / √n`, the fast transform of LinearAlgebra), matched by the same map
    /// fused into the down projection's weight columns.
    public var downProjectionHadamard: Int?
    /// q and k of every head are multiplied, after RoPE, by the layer's `head_dim × head_dim`
    /// matrix (`x ← x · U`); the same U on both sides leaves the attention scores unchanged.
    public var queryKeyRotation: Bool = false

    public init(downProjectionHadamard: Int? = nil, queryKeyRotation: Bool = false) {
        self.downProjectionHadamard = downProjectionHadamard
        self.queryKeyRotation = queryKeyRotation
    }

    public var isEmpty: Bool { downProjectionHadamard == nil && !queryKeyRotation }

    /// The `hidden × hidden` rotation U_A of the residual stream (the model's hidden states are the
    /// original's times U), when one is fused. Never applied at run time: it lets a verifier compare
    /// hidden states with the original model's in the original basis.
    public static let residualRotationTensor = "lathe.residual_rotation"

    public static func queryKeyRotationTensor(layer: Int) -> String {
        LlamaTensorNames.layerTensor(layer, "self_attn.qk_rotation")
    }

    /// Whether `name` is a transform's tensor (U_A, a U_C) rather than a weight: quantizing a
    /// rotation changes every product through it, so encodings chosen for weights leave it alone.
    public static func isTransformTensor(_ name: String) -> Bool {
        name == residualRotationTensor || name.hasSuffix(".self_attn.qk_rotation.weight")
    }

    public init(metadata: Metadata) throws(LatheError) {
        self = try MetadataRecord.decode(Self.self, metadata, key: Self.metadataKey) ?? Self()
    }

    public func store(in metadata: inout Metadata) throws(LatheError) {
        try MetadataRecord.store(isEmpty ? nil : self, in: &metadata, key: Self.metadataKey)
    }
}

/// Which coordinates of each activation space are the high-precision subspace: the tail
/// `hiddenHigh` of the hidden size and the tail `headHigh` of each head. Written by the basis and
/// rotation passes (`lathe.subspaces`), read by the quantizers.
public struct SubspaceLayout: Codable, Sendable, Equatable {
    public static let metadataKey = "lathe.subspaces"

    public var hiddenHigh: Int
    public var headHigh: Int
    /// Where the layout came from (`pca`, `none`), for reports.
    public var basis: String
    /// Eigenvalue spectra of the bases, largest first (`residual`, and `values`/`keys` averaged over
    /// layers), for reports.
    public var spectra: [String: [Double]]?

    public init(hiddenHigh: Int, headHigh: Int, basis: String) {
        self.hiddenHigh = hiddenHigh
        self.headHigh = headHigh
        self.basis = basis
    }

    /// The recorded layout, or none (every coordinate low precision).
    public init(metadata: Metadata) throws(LatheError) {
        self =
            try MetadataRecord.decode(Self.self, metadata, key: Self.metadataKey)
            ?? Self(hiddenHigh: 0, headHigh: 0, basis: "none")
    }

    public func store(in metadata: inout Metadata) throws(LatheError) {
        try MetadataRecord.store(self, in: &metadata, key: Self.metadataKey)
    }
}

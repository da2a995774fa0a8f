/// Named places in each layer where activations can be observed.
public enum ActivationSite: String, CaseIterable, Sendable {
    /// RMS-normalised input of attention (what q, k and v projections read).
    case attentionInput = "attn_input"
    /// Input of the output projection (the heads' mixed values).
    case attentionOutputInput = "o_proj_input"
    /// RMS-normalised input of the MLP (what gate and up projections read).
    case mlpInput = "mlp_input"
    /// Input of the down projection (SiLU(gate) · up).
    case downInput = "down_proj_input"
    /// Output of the value projection, all KV heads side by side.
    case values = "v_proj_output"
    /// Keys after RoPE, all KV heads side by side.
    case rotatedKeys = "k_rope"

    /// Sites whose statistics are kept per KV head (each head_dim wide) rather than for the whole row.
    public var isPerHead: Bool { self == .values || self == .rotatedKeys }
}

/// Receives activations as a session computes them: `rows × width` values, row-major.
public protocol ActivationObserver: AnyObject {
    func observe(_ site: ActivationSite, layer: Int, rows: Int, width: Int, values: UnsafeBufferPointer<Float>)
}

import LatheCore

/// `quantize-activations`: per-token asymmetric quantization of the inputs of every linear layer,
/// recorded in the model for the runtime to execute. The high-precision subspace recorded by
/// `pca-basis` forms its own group (the tail of the hidden state; each head's tail at the output
/// projection's input), so it gets its own scale and zero point at `highBits`.
///
/// Following the reference: the residual-stream inputs and the down projection's input include 0 in
/// their range; the output projection's input is quantized per (token, head) without it.
public struct QuantizeActivationsPass: ModelPass {
    public struct Options: Codable, Sendable {
        public var bits: Int?
        public var highBits: Int?
        /// Range shrink ratio in (0, 1] (default 1: no clipping).
        public var clip: Float?
        /// Sites to quantize (default all four: attn_input, mlp_input, o_proj_input, down_proj_input).
        public var sites: [String]?
    }

    public static let passID = "quantize-activations"
    public static let summary =
        "per-token asymmetric activation quantization (low/high subspace groups), run by the runtime"

    static let allSites = ["attn_input", "mlp_input", "o_proj_input", "down_proj_input"]

    let bits: Int
    let highBits: Int
    let clip: Float
    let sites: [String]

    public init(options: Options) throws {
        bits = options.bits ?? 4
        highBits = options.highBits ?? 8
        clip = options.clip ?? 1
        sites = options.sites ?? Self.allSites
        for site in sites where !Self.allSites.contains(site) {
            throw LatheError.invalidValue(
                field: "options of pass 'quantize-activations': sites", value: site,
                expected: Self.allSites.joined(separator: ", "))
        }
    }

    func quantizers(_ config: LlamaConfig, _ layout: SubspaceLayout) -> [String: ActivationQuantizer] {
        var result: [String: ActivationQuantizer] = [:]
        for site in sites {
            switch site {
            case "o_proj_input":
                result[site] = ActivationQuantizer(
                    bits: bits, highBits: highBits, highCount: layout.headHigh, groupSize: config.headDim,
                    includeZero: false, clip: clip)
            case "down_proj_input":
                result[site] = ActivationQuantizer(bits: bits, highBits: highBits, includeZero: true, clip: clip)
            default:
                result[site] = ActivationQuantizer(
                    bits: bits, highBits: highBits, highCount: layout.hiddenHigh, includeZero: true, clip: clip)
            }
        }
        return result
    }

    public func plan(_ graph: ModelGraph) throws -> PassPlan {
        let config = try graph.llamaConfig()
        let layout = try SubspaceLayout(metadata: graph.metadata)
        let widths = [
            "attn_input": config.hiddenSize, "mlp_input": config.hiddenSize,
            "o_proj_input": config.headCount * config.headDim, "down_proj_input": config.ffnSize,
        ]
        var notes: [String] = []
        for (site, quantizer) in quantizers(config, layout).sorted(by: { $0.key < $1.key }) {
            try quantizer.validate(width: widths[site] ?? 0, field: "options of pass 'quantize-activations'")
            notes.append(
                "\(site): A\(bits)"
                    + (quantizer.highCount > 0 ? " with the last \(quantizer.highCount) at \(highBits) bit" : "")
                    + (quantizer.groupSize.map { " per group of \($0)" } ?? " per token"))
        }
        return PassPlan(notes: notes)
    }

    public func apply(_ graph: inout ModelGraph, context: inout PassContext) throws {
        let config = try graph.llamaConfig()
        _ = try plan(graph)
        var scheme = try QuantizationScheme(metadata: graph.metadata)
        for (site, quantizer) in quantizers(config, try SubspaceLayout(metadata: graph.metadata)) {
            scheme.activations[site] = quantizer
        }
        try scheme.store(in: &graph.metadata)
    }
}

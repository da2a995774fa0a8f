/// HF ↔ GGUF tensor names for Llama-family models (formats.md §1.7) and the q/k row permutation
/// llama.cpp applies (§1.8).
public enum LlamaTensorNames {
    /// The canonical (HF) names of Lathe's graphs: the model-wide tensors, and a layer's.
    public static let embedding = "model.embed_tokens.weight"
    public static let head = "lm_head.weight"
    public static let finalNorm = "model.norm.weight"

    /// `model.layers.N.PART.weight`, PART being `self_attn.q_proj`, `mlp.down_proj`,
    /// `input_layernorm`, ….
    public static func layerTensor(_ layer: Int, _ part: String) -> String { "model.layers.\(layer).\(part).weight" }

    private static let global: [(hf: String, gguf: String)] = [
        ("model.embed_tokens", "token_embd"),
        ("model.norm", "output_norm"),
        ("lm_head", "output"),
    ]
    private static let perLayer: [(hf: String, gguf: String)] = [
        ("input_layernorm", "attn_norm"),
        ("self_attn.q_proj", "attn_q"),
        ("self_attn.k_proj", "attn_k"),
        ("self_attn.v_proj", "attn_v"),
        ("self_attn.o_proj", "attn_output"),
        ("post_attention_layernorm", "ffn_norm"),
        ("mlp.gate_proj", "ffn_gate"),
        ("mlp.up_proj", "ffn_up"),
        ("mlp.down_proj", "ffn_down"),
    ]

    /// The GGUF name of an HF tensor, or the name unchanged when it has no mapping.
    public static func gguf(fromHF name: String) -> String {
        let (stem, suffix) = split(name)
        for (hf, gguf) in global where stem == hf { return gguf + suffix }
        if let (layer, rest) = layerPart(stem, prefix: "model.layers.") {
            for (hf, gguf) in perLayer where rest == hf { return "blk.\(layer).\(gguf)\(suffix)" }
        }
        return name
    }

    /// The HF name of a GGUF tensor, or the name unchanged when it has no mapping.
    public static func hf(fromGGUF name: String) -> String {
        let (stem, suffix) = split(name)
        for (hf, gguf) in global where stem == gguf { return hf + suffix }
        if let (layer, rest) = layerPart(stem, prefix: "blk.") {
            for (hf, gguf) in perLayer where rest == gguf { return "model.layers.\(layer).\(hf)\(suffix)" }
        }
        return name
    }

    /// The layer a tensor belongs to (`model.layers.N.…` or `blk.N.…`), or nil for a global tensor.
    public static func layer(of name: String) -> Int? {
        (layerPart(name, prefix: "model.layers.") ?? layerPart(name, prefix: "blk."))?.0
    }

    /// The number of heads whose rows llama.cpp permutes in this HF tensor (q: heads, k: KV heads).
    public static func permutedHeads(hfName name: String, config: LlamaConfig) -> Int? {
        let (stem, _) = split(name)
        if stem.hasSuffix(".self_attn.q_proj") { return config.headCount }
        if stem.hasSuffix(".self_attn.k_proj") { return config.kvHeadCount }
        return nil
    }

    /// Source row for each destination row. `toGGUF`: GGUF row `h·hd + 2i + j` takes HF row
    /// `h·hd + j·hd/2 + i`; the reverse map undoes it.
    public static func rowPermutation(rows: Int, heads: Int, toGGUF: Bool) -> [Int] {
        let headDim = rows / heads
        let half = headDim / 2
        var source = [Int](repeating: 0, count: rows)
        for h in 0..<heads {
            for i in 0..<half {
                for j in 0..<2 {
                    let ggufRow = h * headDim + 2 * i + j
                    let hfRow = h * headDim + j * half + i
                    if toGGUF { source[ggufRow] = hfRow } else { source[hfRow] = ggufRow }
                }
            }
        }
        return source
    }

    /// A tensor whose outermost rows are reordered (`permutation[d]` = source row of row `d`).
    /// Rows move whole, so quantized blocks are copied without requantization.
    public static func permuteRows(_ tensor: Tensor, permutation: [Int], renamedTo name: String) -> Tensor {
        let info = TensorInfo(name: name, dtype: tensor.info.dtype, shape: tensor.info.shape)
        return Tensor(info: info) {
            let storage = try tensor.storage()
            let rowBytes = storage.byteCount / max(permutation.count, 1)
            let bytes = storage.withUnsafeBytes { source in
                [UInt8](unsafeUninitializedCapacity: storage.byteCount) { buffer, initialized in
                    let raw = UnsafeMutableRawBufferPointer(buffer)
                    for (row, from) in permutation.enumerated() {
                        let target = UnsafeMutableRawBufferPointer(
                            rebasing: raw[(row * rowBytes)..<((row + 1) * rowBytes)])
                        target.copyMemory(
                            from: UnsafeRawBufferPointer(rebasing: source[(from * rowBytes)..<((from + 1) * rowBytes)]))
                    }
                    initialized = storage.byteCount
                }
            }
            return TensorStorage(bytes: bytes)
        }
    }

    private static func split(_ name: String) -> (stem: String, suffix: String) {
        for suffix in [".weight", ".bias"] where name.hasSuffix(suffix) {
            return (String(name.dropLast(suffix.count)), suffix)
        }
        return (name, "")
    }

    private static func layerPart(_ stem: String, prefix: String) -> (Int, String)? {
        guard stem.hasPrefix(prefix) else { return nil }
        let rest = stem.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: "."), let layer = Int(rest[..<dot]) else { return nil }
        return (layer, String(rest[rest.index(after: dot)...]))
    }
}

import LatheCore

/// The small Llama-shaped model the harnesses write their seed files from: one layer, hidden 32,
/// F32 weights filled by a fixed formula, a byte-level BPE vocabulary of 40 tokens.
public enum SeedModel {
    public static let config = LlamaConfig(
        hiddenSize: 32, layerCount: 1, headCount: 2, kvHeadCount: 1, ffnSize: 64, normEpsilon: 0x1p-17,
        ropeBase: 10_000, vocabSize: 40, contextLength: 64, tiedEmbeddings: true)

    public static let tokenizer: TokenizerDescription = {
        let controls = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let letters = "abcdefghijklmnopqrstuvwxyzĠĊ".map(String.init)
        let pairs = ["ab", "cd", "ef", "gh", "ij", "kl", "mn", "op", "qr"]
        let tokens = controls + letters + pairs
        return TokenizerDescription(
            model: "gpt2", preTokenizer: "smollm", tokens: tokens,
            tokenTypes: tokens.indices.map { $0 < controls.count ? 3 : 1 },
            merges: pairs.map { "\($0.first!) \($0.last!)" }, bosTokenID: 1, eosTokenID: 2, unknownTokenID: 0,
            paddingTokenID: 2, chatTemplate: "{{ messages }}")
    }()

    /// Values in [-0.1, 0.1) from a fixed formula: the seeds are the same on every machine.
    static func values(_ count: Int, salt: Int, norm: Bool) -> [Float] {
        (0..<count).map { i in
            let x = Float((i &* 2_654_435_761 &+ salt &* 40_503) % 2_000) / 10_000 - 0.1
            return norm ? 1 + x : x
        }
    }

    /// The model in Lathe's canonical (HF) layout, plus `extras`: any tensors a format's seed adds.
    public static func graph(extras: [Tensor] = []) throws -> ModelGraph {
        let (h, f, kv) = (config.hiddenSize, config.ffnSize, config.kvHeadCount * config.headDim)
        let shapes: [(String, [Int])] = [
            ("model.embed_tokens.weight", [config.vocabSize, h]),
            ("model.layers.0.input_layernorm.weight", [h]),
            ("model.layers.0.self_attn.q_proj.weight", [h, h]),
            ("model.layers.0.self_attn.k_proj.weight", [kv, h]),
            ("model.layers.0.self_attn.v_proj.weight", [kv, h]),
            ("model.layers.0.self_attn.o_proj.weight", [h, h]),
            ("model.layers.0.post_attention_layernorm.weight", [h]),
            ("model.layers.0.mlp.gate_proj.weight", [f, h]),
            ("model.layers.0.mlp.up_proj.weight", [f, h]),
            ("model.layers.0.mlp.down_proj.weight", [h, f]),
            ("model.norm.weight", [h]),
        ]
        let tensors = shapes.enumerated().map { index, entry in
            Tensor(
                info: TensorInfo(name: entry.0, dtype: .f32, shape: Shape(entry.1)),
                storage: TensorStorage(
                    values: values(entry.1.reduce(1, *), salt: index, norm: entry.1.count == 1)))
        }
        var metadata = Metadata([("general.architecture", .string("llama")), ("general.name", .string("seed"))])
        config.store(in: &metadata)
        tokenizer.store(in: &metadata)
        return try ModelGraph(
            source: "seed", metadata: metadata, config: config, tokenizer: tokenizer, tensors: tensors + extras)
    }

    /// An F32 tensor of `shape` with formula values, for extras.
    public static func tensor(_ name: String, _ shape: [Int]) -> Tensor {
        Tensor(
            info: TensorInfo(name: name, dtype: .f32, shape: Shape(shape)),
            storage: TensorStorage(values: values(shape.reduce(1, *), salt: name.utf8.count, norm: false)))
    }
}

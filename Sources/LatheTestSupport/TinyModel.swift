import LatheCore
import LinearAlgebra

/// A tiny Llama-shaped model built in code with a fixed seed: the synthetic checkpoint tests use
/// instead of downloads. Canonical (HF) layout, F32 weights unless told otherwise.
public enum TinyModel {
    /// The norm epsilon is a power of two so that GGUF's f32 storage keeps it exactly.
    public static func config(
        layers: Int = 2, hidden: Int = 64, heads: Int = 4, kvHeads: Int = 2, ffn: Int = 128, vocab: Int = 96
    )
        -> LlamaConfig
    {
        LlamaConfig(
            hiddenSize: hidden, layerCount: layers, headCount: heads, kvHeadCount: kvHeads, ffnSize: ffn,
            normEpsilon: 0x1p-17,
            ropeBase: 10_000, vocabSize: vocab, contextLength: 256, tiedEmbeddings: true)
    }

    /// A byte-level BPE vocabulary: 3 control tokens, then single characters, then a few merges.
    public static func tokenizer(vocab: Int) -> TokenizerDescription {
        let controls = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let letters = "abcdefghijklmnopqrstuvwxyzĠĊ".map(String.init)
        var tokens = controls + letters
        var merges: [String] = []
        var index = 0
        while tokens.count < vocab {
            let (a, b) = (letters[index % letters.count], letters[(index / letters.count + index) % letters.count])
            if !tokens.contains(a + b) {
                tokens.append(a + b)
                merges.append("\(a) \(b)")
            }
            index += 1
        }
        return TokenizerDescription(
            model: "gpt2", preTokenizer: "smollm", tokens: tokens,
            tokenTypes: tokens.indices.map { $0 < controls.count ? 3 : 1 }, merges: merges, bosTokenID: 1,
            eosTokenID: 2,
            unknownTokenID: 0, paddingTokenID: 2, chatTemplate: "{{ messages }}")
    }

    /// The model: every HF Llama tensor with Gaussian weights (scale 0.05) and norms near 1.
    public static func graph(_ config: LlamaConfig = config(), seed: UInt64 = 7) throws -> ModelGraph {
        var generator = SeededGenerator(seed: seed)
        func tensor(_ name: String, _ shape: [Int], norm: Bool = false) -> Tensor {
            let count = shape.reduce(1, *)
            let values = (0..<count).map { _ in
                Float(norm ? 1 + 0.1 * generator.nextGaussian() : 0.05 * generator.nextGaussian())
            }
            return Tensor(
                info: TensorInfo(name: name, dtype: .f32, shape: Shape(shape)), storage: TensorStorage(values: values))
        }
        let (h, f, kv) = (config.hiddenSize, config.ffnSize, config.kvHeadCount * config.headDim)
        var tensors = [tensor(LlamaTensorNames.embedding, [config.vocabSize, h])]
        for layer in 0..<config.layerCount {
            let p = "model.layers.\(layer)."
            tensors += [
                tensor(p + "input_layernorm.weight", [h], norm: true),
                tensor(p + "self_attn.q_proj.weight", [config.headCount * config.headDim, h]),
                tensor(p + "self_attn.k_proj.weight", [kv, h]), tensor(p + "self_attn.v_proj.weight", [kv, h]),
                tensor(p + "self_attn.o_proj.weight", [h, config.headCount * config.headDim]),
                tensor(p + "post_attention_layernorm.weight", [h], norm: true),
                tensor(p + "mlp.gate_proj.weight", [f, h]), tensor(p + "mlp.up_proj.weight", [f, h]),
                tensor(p + "mlp.down_proj.weight", [h, f]),
            ]
        }
        tensors.append(tensor(LlamaTensorNames.finalNorm, [h], norm: true))
        var metadata = Metadata([("general.architecture", .string("llama")), ("general.name", .string("tiny"))])
        config.store(in: &metadata)
        let tokenizer = tokenizer(vocab: config.vocabSize)
        tokenizer.store(in: &metadata)
        return try ModelGraph(
            source: "tiny", metadata: metadata, config: config, tokenizer: tokenizer, tensors: tensors)
    }
}

import ArgumentParser
import Foundation
import LatheBuiltins
import LatheCore

/// `lathe-bench synthesize`: a Llama-shaped checkpoint of any size, its values generated while it is
/// written, for the scale runs in RELIABILITY.md (a 20 GiB model needs no download and no memory).
struct Synthesize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a synthetic Llama-shaped checkpoint (values from a seeded generator, streamed).",
        discussion: """
            Weights are uniform in ±0.05, norms near 1, from xorshift64* seeded per tensor, so the file is \
            the same on every machine. The defaults give a Llama-2-7B-wide model of 26 layers in F32: \
            237 tensors, 20.58 GiB.
            """)

    @Option(name: .shortAndLong, help: "The output file (.safetensors or .gguf).") var output: String
    @Option(help: "Decoder layers.") var layers = 26
    @Option(help: "Hidden size.") var hidden = 4096
    @Option(help: "FFN (intermediate) size.") var ffn = 11008
    @Option(help: "Attention heads.") var heads = 32
    @Option(help: "Key/value heads.") var kvHeads = 32
    @Option(help: "Vocabulary size.") var vocab = 32000
    @Option(help: "Element type: f32, f16 or bf16.") var dtype = "f32"
    @Flag(help: "Overwrite an existing output.") var force = false

    func run() throws {
        let element: DType =
            switch dtype {
            case "f32": .f32
            case "f16": .f16
            case "bf16": .bf16
            default: throw ValidationError("--dtype must be f32, f16 or bf16")
            }
        let config = LlamaConfig(
            hiddenSize: hidden, layerCount: layers, headCount: heads, kvHeadCount: kvHeads, ffnSize: ffn,
            normEpsilon: 1e-5, ropeBase: 10_000, vocabSize: vocab, contextLength: 4096, tiedEmbeddings: false)
        let graph = try Self.graph(config, dtype: element)
        let url = URL(fileURLWithPath: output)
        let format = url.pathExtension == "gguf" ? "gguf" : "safetensors"
        let bytes = try graph.tensors.reduce(0) { $0 + (try $1.info.byteCount()) }
        FileHandle.standardError.write(
            Data(String(format: "synthesize: %d tensors, %.2f GiB\n", graph.tensors.count, Double(bytes) / 0x1p30).utf8)
        )
        let started = Date()
        let report = try LatheBuiltins.registry.writer(format).write(
            graph, to: url, options: WriteOptions(overwrite: force))
        FileHandle.standardError.write(
            Data(
                String(
                    format: "synthesize: wrote %@ (%.2f GiB) in %.0f s\n", report.path,
                    Double(report.bytesWritten) / 0x1p30, Date().timeIntervalSince(started)
                ).utf8))
    }

    /// Every HF Llama tensor, each produced in 4 MiB chunks as the writer asks for it.
    static func graph(_ config: LlamaConfig, dtype: DType) throws -> ModelGraph {
        let (h, f, kv) = (config.hiddenSize, config.ffnSize, config.kvHeadCount * config.headDim)
        var shapes: [(String, [Int])] = [(LlamaTensorNames.embedding, [config.vocabSize, h])]
        for layer in 0..<config.layerCount {
            let p = "model.layers.\(layer)."
            shapes += [
                (p + "input_layernorm.weight", [h]),
                (p + "self_attn.q_proj.weight", [config.headCount * config.headDim, h]),
                (p + "self_attn.k_proj.weight", [kv, h]), (p + "self_attn.v_proj.weight", [kv, h]),
                (p + "self_attn.o_proj.weight", [h, config.headCount * config.headDim]),
                (p + "post_attention_layernorm.weight", [h]), (p + "mlp.gate_proj.weight", [f, h]),
                (p + "mlp.up_proj.weight", [f, h]), (p + "mlp.down_proj.weight", [h, f]),
            ]
        }
        shapes += [(LlamaTensorNames.finalNorm, [h]), (LlamaTensorNames.head, [config.vocabSize, h])]
        let tensors = shapes.enumerated().map { index, entry in
            let (name, shape) = entry
            let count = shape.reduce(1, *)
            return Tensor(info: TensorInfo(name: name, dtype: dtype, shape: Shape(shape))) { sink in
                var state = 0x9E37_79B9_7F4A_7C15 &* UInt64(index + 1)
                let chunk = 1 << 20
                var values = [Float](repeating: 0, count: chunk)
                var done = 0
                while done < count {
                    let n = min(chunk, count - done)
                    for i in 0..<n {
                        state ^= state >> 12
                        state ^= state << 25
                        state ^= state >> 27
                        let unit = Float((state &* 0x2545_F491_4F6C_DD1D) >> 40) * 0x1p-24  // [0, 1)
                        values[i] = shape.count == 1 ? 1 + (unit - 0.5) * 0.2 : (unit - 0.5) * 0.1
                    }
                    try Self.emit(values[0..<n], as: dtype, into: sink)
                    done += n
                }
            }
        }
        var metadata = Metadata([
            ("general.architecture", .string("llama")), ("general.name", .string("synthetic")),
        ])
        config.store(in: &metadata)
        let tokenizer = byteTokenizer(vocab: config.vocabSize)
        tokenizer.store(in: &metadata)
        return try ModelGraph(
            source: "synthetic", metadata: metadata, config: config, tokenizer: tokenizer, tensors: tensors)
    }

    /// A byte-level BPE vocabulary without merges (every byte its own token, as GPT-2 maps bytes to
    /// characters), padded with control tokens to `vocab`: any text tokenizes, so calibrated recipes
    /// run on the synthetic model.
    static func byteTokenizer(vocab: Int) -> TokenizerDescription {
        let controls = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        let printable = Array(33...126) + Array(161...172) + Array(174...255)
        var shifted = 0
        let bytes = (0..<256).map { byte -> String in
            if printable.contains(byte) { return String(UnicodeScalar(UInt8(byte))) }
            shifted += 1
            return String(UnicodeScalar(UInt32(255 + shifted))!)
        }
        let padding = (0..<max(0, vocab - controls.count - bytes.count)).map { "<|synthetic_\($0)|>" }
        let tokens = Array((controls + bytes + padding).prefix(vocab))
        return TokenizerDescription(
            model: "gpt2", preTokenizer: "smollm", tokens: tokens,
            tokenTypes: tokens.indices.map { $0 < controls.count || $0 >= controls.count + bytes.count ? 3 : 1 },
            merges: [], bosTokenID: 1, eosTokenID: 2, unknownTokenID: 0, paddingTokenID: 2,
            chatTemplate: nil)
    }

    static func emit(
        _ values: ArraySlice<Float>, as dtype: DType, into sink: (UnsafeRawBufferPointer) throws -> Void
    ) throws {
        switch dtype {
        case .f16: try values.map { HalfPrecision.f16Bits($0) }.withUnsafeBytes(sink)
        case .bf16: try values.map { HalfPrecision.bf16Bits($0) }.withUnsafeBytes(sink)
        default: try values.withUnsafeBytes(sink)
        }
    }
}

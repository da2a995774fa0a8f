import Foundation
import LatheCore
import LatheRuntime
import Testing

/// A deliberately plain, loop-based Llama forward pass, written from the definitions and sharing no
/// code with LatheRuntime: the oracle for the BLAS-based session. Double precision throughout.
struct ReferenceLlama {
    let config: LlamaConfig
    let tensors: [String: [Float]]
    let interleaved: Bool

    init(_ graph: ModelGraph) throws {
        config = try #require(graph.config)
        var tensors: [String: [Float]] = [:]
        for tensor in graph.tensors { tensors[tensor.name] = try TensorCodec.decode(tensor) }
        self.tensors = tensors
        interleaved = graph.naming == .gguf
    }

    private func weight(_ hfName: String) -> [Float] {
        tensors[interleaved ? LlamaTensorNames.gguf(fromHF: hfName) : hfName]!
    }

    /// Logits (`tokens.count × vocab`) for a whole sequence starting at position 0.
    func logits(_ tokens: [Int]) -> [[Double]] {
        let c = config
        let (d, hd, heads, kvHeads) = (c.hiddenSize, c.headDim, c.headCount, c.kvHeadCount)
        func matvec(_ w: [Float], _ x: [Double], rows: Int) -> [Double] {
            (0..<rows).map { r in (0..<x.count).reduce(0.0) { $0 + Double(w[r * x.count + $1]) * x[$1] } }
        }
        func norm(_ x: [Double], _ w: [Float]) -> [Double] {
            let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
            return x.indices.map { x[$0] / (ms + c.normEpsilon).squareRoot() * Double(w[$0]) }
        }
        func rope(_ v: [Double], position: Int) -> [Double] {
            var out = v
            for head in 0..<(v.count / hd) {
                for i in 0..<(hd / 2) {
                    let theta = Double(position) * pow(c.ropeBase, -2 * Double(i) / Double(hd))
                    let (a, b) =
                        interleaved
                        ? (head * hd + 2 * i, head * hd + 2 * i + 1) : (head * hd + i, head * hd + i + hd / 2)
                    out[a] = v[a] * cos(theta) - v[b] * sin(theta)
                    out[b] = v[a] * sin(theta) + v[b] * cos(theta)
                }
            }
            return out
        }
        let embedding = weight("model.embed_tokens.weight")
        var states = tokens.map { t in (0..<d).map { Double(embedding[t * d + $0]) } }
        for layer in 0..<c.layerCount {
            let p = "model.layers.\(layer)."
            var keys: [[Double]] = []
            var values: [[Double]] = []
            var queries: [[Double]] = []
            for (position, x) in states.enumerated() {
                let h = norm(x, weight(p + "input_layernorm.weight"))
                queries.append(
                    rope(matvec(weight(p + "self_attn.q_proj.weight"), h, rows: heads * hd), position: position))
                keys.append(
                    rope(matvec(weight(p + "self_attn.k_proj.weight"), h, rows: kvHeads * hd), position: position))
                values.append(matvec(weight(p + "self_attn.v_proj.weight"), h, rows: kvHeads * hd))
            }
            for position in states.indices {
                var attended = [Double](repeating: 0, count: heads * hd)
                for head in 0..<heads {
                    let kv = head / (heads / kvHeads)
                    var scores = (0...position).map { j in
                        (0..<hd).reduce(0.0) { $0 + queries[position][head * hd + $1] * keys[j][kv * hd + $1] }
                            / Double(hd).squareRoot()
                    }
                    let m = scores.max()!
                    scores = scores.map { exp($0 - m) }
                    let total = scores.reduce(0, +)
                    for (j, s) in scores.enumerated() {
                        for i in 0..<hd { attended[head * hd + i] += s / total * values[j][kv * hd + i] }
                    }
                }
                let o = matvec(weight(p + "self_attn.o_proj.weight"), attended, rows: d)
                states[position] = states[position].indices.map { states[position][$0] + o[$0] }
                let h = norm(states[position], weight(p + "post_attention_layernorm.weight"))
                let gate = matvec(weight(p + "mlp.gate_proj.weight"), h, rows: c.ffnSize)
                let up = matvec(weight(p + "mlp.up_proj.weight"), h, rows: c.ffnSize)
                let act = gate.indices.map { gate[$0] / (1 + exp(-gate[$0])) * up[$0] }
                let down = matvec(weight(p + "mlp.down_proj.weight"), act, rows: d)
                states[position] = states[position].indices.map { states[position][$0] + down[$0] }
            }
        }
        let head = tensors[interleaved ? "output.weight" : "lm_head.weight"] ?? embedding
        return states.map { x in matvec(head, norm(x, weight("model.norm.weight")), rows: c.vocabSize) }
    }
}

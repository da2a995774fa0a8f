"""An independent Llama forward pass: the logits a GGUF model gives a token sequence.

Usage: llama_forward.py MODEL.gguf OUT.bin TOKEN [TOKEN ...]

Reads the file with gguf-py (its own reader and dequantizers) and follows Hugging Face's Llama in
float64 numpy, on llama.cpp's tensor layout: GGUF stores the q/k rows permuted so that RoPE rotates
adjacent pairs (x[2i], x[2i+1]), which is what this script does (Lathe's runtime works in the HF
layout and rotates halves). Writes the logits as little-endian float64, tokens × vocabulary.
"""

import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def main():
    path, out, tokens = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3:]]
    reader = GGUFReader(path)
    arch = field(reader, "general.architecture")
    layers = field(reader, f"{arch}.block_count")
    heads = field(reader, f"{arch}.attention.head_count")
    kv_heads = field(reader, f"{arch}.attention.head_count_kv")
    eps = field(reader, f"{arch}.attention.layer_norm_rms_epsilon")
    base = field(reader, f"{arch}.rope.freq_base")
    tensors = {t.name: t for t in reader.tensors}

    def weight(name):
        t = tensors[name]
        return dequantize(t.data, t.tensor_type).astype(np.float64).reshape(
            [int(n) for n in reversed(t.shape)])

    embedding = weight("token_embd.weight")
    head = weight("output.weight") if "output.weight" in tensors else embedding
    h = embedding[tokens]
    count, dim = h.shape
    hd = dim // heads
    group = heads // kv_heads
    # Pair i of a head turns by position · base^(−2i/hd).
    angles = np.outer(np.arange(count), base ** (-np.arange(0, hd, 2) / hd))
    cos, sin = np.cos(angles)[:, None, :], np.sin(angles)[:, None, :]

    def rope(x):
        even, odd = x[..., 0::2], x[..., 1::2]
        rotated = np.empty_like(x)
        rotated[..., 0::2] = even * cos - odd * sin
        rotated[..., 1::2] = even * sin + odd * cos
        return rotated

    def norm(x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w

    mask = np.triu(np.full((count, count), -np.inf), 1)
    for layer in range(layers):
        p = f"blk.{layer}."
        x = norm(h, weight(p + "attn_norm.weight"))
        q = rope((x @ weight(p + "attn_q.weight").T).reshape(count, heads, hd))
        k = rope((x @ weight(p + "attn_k.weight").T).reshape(count, kv_heads, hd))
        v = (x @ weight(p + "attn_v.weight").T).reshape(count, kv_heads, hd)
        attended = np.empty((count, heads, hd))
        for head_index in range(heads):
            kv = head_index // group
            scores = q[:, head_index] @ k[:, kv].T / np.sqrt(hd) + mask
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            attended[:, head_index] = (scores / scores.sum(axis=-1, keepdims=True)) @ v[:, kv]
        h = h + attended.reshape(count, dim) @ weight(p + "attn_output.weight").T
        x = norm(h, weight(p + "ffn_norm.weight"))
        gate = x @ weight(p + "ffn_gate.weight").T
        up = x @ weight(p + "ffn_up.weight").T
        h = h + (gate / (1 + np.exp(-gate)) * up) @ weight(p + "ffn_down.weight").T
    logits = norm(h, weight("output_norm.weight")) @ head.T
    logits.astype("<f8").tofile(out)


def field(reader, key):
    value = reader.fields[key]
    part = value.parts[value.data[0]]
    if value.types[0] == GGUFValueType.STRING:
        return bytes(part).decode()
    return part[0].item()


if __name__ == "__main__":
    main()

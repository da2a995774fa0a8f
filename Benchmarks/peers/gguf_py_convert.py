"""The peer for BENCHMARKS.md: the same conversions as `lathe convert`, done with gguf-py (llama.cpp's
Python library), numpy and the safetensors package.

usage:
  gguf_py_convert.py to-safetensors IN.gguf OUT.safetensors
  gguf_py_convert.py to-gguf IN.safetensors METADATA_SOURCE.gguf OUT.gguf TYPE     (TYPE: f16, q8_0, q4_0)
"""
import sys

import numpy as np
from gguf import GGMLQuantizationType, GGUFReader, GGUFValueType, GGUFWriter
from gguf.quants import dequantize, quantize
from safetensors.numpy import load_file, save_file

HEADS, KV_HEADS = 9, 3
NAMES = {
    "token_embd": "model.embed_tokens", "output_norm": "model.norm", "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def hf_name(name):
    stem = name.rsplit(".", 1)[0]
    if stem.startswith("blk."):
        _, layer, part = stem.split(".", 2)
        return f"model.layers.{layer}.{NAMES[part]}.weight"
    return NAMES[stem] + ".weight"


def gguf_name(name):
    reverse = {v: k for k, v in NAMES.items()}
    stem = name[: -len(".weight")]
    if stem.startswith("model.layers."):
        _, _, layer, part = stem.split(".", 3)
        return f"blk.{layer}.{reverse[part]}.weight"
    return reverse[stem] + ".weight"


def permute(w, heads, to_gguf):
    shape = w.shape
    if to_gguf:
        return w.reshape(heads, 2, shape[0] // heads // 2, *shape[1:]).swapaxes(1, 2).reshape(shape)
    return w.reshape(heads, shape[0] // heads // 2, 2, *shape[1:]).swapaxes(1, 2).reshape(shape)


def heads_for(name):
    if name.endswith("self_attn.q_proj.weight"):
        return HEADS
    if name.endswith("self_attn.k_proj.weight"):
        return KV_HEADS
    return None


def to_safetensors(source, out):
    tensors = {}
    for t in GGUFReader(source).tensors:
        values = dequantize(t.data, t.tensor_type).reshape([int(d) for d in reversed(t.shape.tolist())])
        name = hf_name(t.name)
        heads = heads_for(name)
        tensors[name] = np.ascontiguousarray(permute(values, heads, False) if heads else values, dtype=np.float32)
    save_file(tensors, out, metadata={"format": "pt"})


def copy_metadata(reader, writer):
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type"):
            continue
        kind = field.types[0]
        if kind == GGUFValueType.ARRAY:
            sub = field.types[1]
            if sub == GGUFValueType.STRING:
                values = [bytes(field.parts[i]).decode() for i in field.data]
            else:
                values = [field.parts[i].tolist()[0] for i in field.data]
            writer.add_array(name, values)
        elif kind == GGUFValueType.STRING:
            writer.add_string(name, bytes(field.parts[field.data[0]]).decode())
        else:
            writer.add_key_value(name, field.parts[field.data[0]].tolist()[0], kind)


def to_gguf(source, metadata_source, out, kind):
    writer = GGUFWriter(out, "llama")
    copy_metadata(GGUFReader(metadata_source), writer)
    qtype = {"f16": GGMLQuantizationType.F16, "q8_0": GGMLQuantizationType.Q8_0, "q4_0": GGMLQuantizationType.Q4_0}[kind]
    for name, values in load_file(source).items():
        heads = heads_for(name)
        if heads:
            values = permute(values, heads, True)
        if values.ndim == 1:
            writer.add_tensor(gguf_name(name), np.ascontiguousarray(values, dtype=np.float32))
        elif qtype == GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name(name), values.astype(np.float16))
        else:
            writer.add_tensor(gguf_name(name), quantize(values, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


if __name__ == "__main__":
    if sys.argv[1] == "to-safetensors":
        to_safetensors(sys.argv[2], sys.argv[3])
    else:
        to_gguf(sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5])

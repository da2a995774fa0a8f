"""Lathe's GGUF output in llama.cpp: each file is written by `lathe convert` and scored by both
llama.cpp's `llama-perplexity` and `lathe eval ppl` on the same text and protocol (WikiText-2 test,
40 chunks of 512). Agreement shows that llama.cpp loads the files and computes what Lathe computes;
the quantized rows also differ by llama.cpp's own arithmetic (it quantizes activations to 8 bits for
Q8_0 and Q4_0 products, where Lathe's runtime multiplies the dequantized weights in F32).

Then every type Lathe quantizes to is compared with `llama-quantize --pure` on the model's real
weights (from the F32 file, no importance matrix): the tensors' bytes, read with gguf-py.

usage: llamacpp_check.py LATHE LLAMACPP_BIN MODEL.gguf WORKDIR [RECIPE_OUTPUT.gguf …]
(LLAMACPP_BIN: the directory Tests/Oracles/llamacpp/build.sh prints.)"""
import os
import re
import subprocess
import sys

lathe, bin_dir, model, work = sys.argv[1:5]
extra = sys.argv[5:]
text = "data/wikitext-2/wiki.test.raw"
os.makedirs(work, exist_ok=True)


def llama_cpp(path):
    out = subprocess.run(
        [os.path.join(bin_dir, "llama-perplexity"), "-m", path, "-f", text, "-c", "512", "--chunks", "40", "-t", "2"],
        capture_output=True, text=True, check=True)
    return float(re.search(r"Final estimate: PPL = ([0-9.]+)", out.stdout + out.stderr).group(1))


def lathe_ppl(path):
    out = subprocess.run(
        [lathe, "eval", "ppl", path, "--text", text, "--ctx", "512", "--chunks", "40", "--protocol", "llama"],
        capture_output=True, text=True, check=True)
    return float(re.search(r"PPL = ([0-9.]+)", out.stdout).group(1))


files = []
for kind in ["f32", "f16", "q8_0", "q4_0"]:
    path = os.path.join(work, f"smol-{kind}.gguf")
    subprocess.run([lathe, "convert", model, "-o", path, "--type", kind, "--force"], capture_output=True, check=True)
    files.append((f"`lathe convert --type {kind}`", path))
files += [(f"`{os.path.basename(path)}`", path) for path in extra]

print("| file | llama.cpp PPL | Lathe PPL | Lathe / llama.cpp |")
print("|---|---|---|---|")
for label, path in files:
    theirs, ours = llama_cpp(path), lathe_ppl(path)
    print(f"| {label} | {theirs:.4f} | {ours:.4f} | {ours / theirs:.5f} |", flush=True)


def tensors(path):
    import gguf
    return {t.name: (gguf.GGMLQuantizationType(int(t.tensor_type)).name.lower(), bytes(t.data.tobytes()))
            for t in gguf.GGUFReader(path).tensors}


print()
print("| llama-quantize --pure | quantized tensors (types llama.cpp chose) | byte-identical in Lathe's |")
print("|---|---|---|")
source = os.path.join(work, "smol-f32.gguf")
for kind in ["q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k", "q6_k"]:
    ours, theirs = os.path.join(work, f"lathe-{kind}.gguf"), os.path.join(work, f"llama-quantize-{kind}.gguf")
    subprocess.run(
        [os.path.join(bin_dir, "llama-quantize"), "--pure", source, theirs, kind, "2"],
        capture_output=True, check=True)
    theirs_tensors = tensors(theirs)
    # llama.cpp falls back to another type where a row is not a whole number of K-quant super-blocks
    # (SmolLM2's 576 columns): Lathe is given the same type per tensor, so every tensor is compared.
    by_type = {}
    for name, (dtype, _) in theirs_tensors.items():
        if dtype not in ("f32", "f16"):
            by_type.setdefault(dtype, []).append(name.replace(".", "\\."))
    overrides = []
    for dtype, names in sorted(by_type.items()):
        overrides += ["--tensor-type", "^(" + "|".join(names) + ")$=" + dtype]
    subprocess.run([lathe, "convert", source, "-o", ours, "--type", "f32", "--force"] + overrides,
                   capture_output=True, check=True)
    ours_tensors = tensors(ours)
    quantized = [n for n, (dtype, _) in theirs_tensors.items() if dtype not in ("f32", "f16")]
    same = sum(1 for n in quantized if ours_tensors.get(n) == theirs_tensors[n])
    chosen = ", ".join(f"{len(v)} {k.upper()}" for k, v in sorted(by_type.items()))
    print(f"| {kind.upper()} | {len(quantized)} ({chosen}) | {same} |", flush=True)

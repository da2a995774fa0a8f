"""Writes Tests/LatheRuntimeTests/Fixtures/llama-bpe-golden.json: llama.cpp's token ids for a fixed
corpus under the `llama-bpe` pre-tokenizer (Llama 3's split, and its whole-token shortcut), using
SmolLM2's byte-level vocabulary and merges relabelled `llama-bpe`, so that Lathe's tokenizer can be
checked against llama.cpp without a Llama 3 vocabulary.

usage: python make_llama_bpe_golden.py SMOLLM2.gguf TOKENIZE_MANY OUTPUT.json
(TOKENIZE_MANY from build.sh; needs the gguf package.)"""
import json
import os
import random
import subprocess
import sys
import tempfile

import gguf

model, tokenize_many, output = sys.argv[1:4]
here = os.path.dirname(os.path.abspath(__file__))
root = os.path.abspath(os.path.join(here, "..", "..", ".."))


def relabelled_vocabulary(path, destination):
    """The model's metadata with `tokenizer.ggml.pre` = llama-bpe and no tensors (a vocab-only load)."""
    reader = gguf.GGUFReader(path)
    writer = gguf.GGUFWriter(destination, arch=str(reader.fields["general.architecture"].contents()))
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        value = "llama-bpe" if name == "tokenizer.ggml.pre" else field.contents()
        kind = field.types[0]
        if kind == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(name, value, kind, sub_type=field.types[-1])
        else:
            writer.add_key_value(name, value, kind)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def corpus():
    rng = random.Random(20261130)
    strings = []
    with open(os.path.join(root, "data", "wikitext-2", "wiki.valid.tokens"), encoding="utf-8") as f:
        lines = [line for line in f.read().split("\n") if line.strip()]
    strings += [line + "\n" for line in lines[:300]]
    contractions = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'lL",
                    "'d", "'D", "'x", "'", "''s"]
    pieces = ["the", "The", "HELLO", " world", "\t", "\n", "\r\n", "\r", "  ", "   ", " \n ", "\n\n", " ",
              "1", "12", "123", "1234", "12345678", "٣٤٥", "Ⅻ", "²³", "½", "$", "...", "!?", "--", "@-@", " ,",
              ".\n", "!!\n\n", "ﬁ", "naïve", "café", "e\u0301", "東京", "日本語", "😀", "👍🏽", "\u00a0", "\u2028",
              "\u3000", "\u200b", "ß", "İ", "ǅ", "ſ", "K", "\u0085", "\u000b", "\u000c", "a1b2c3", "x²", "#1",
              " 2024-11-30", "3.14159", "1,000,000", "(a)", "[b]", "{c}", "<|im_start|>", "</s>"]
    for _ in range(1200):
        parts = []
        for _ in range(rng.randint(1, 8)):
            roll = rng.random()
            if roll < 0.2:
                parts.append(rng.choice(contractions))
            elif roll < 0.9:
                parts.append(rng.choice(pieces))
            else:
                code = rng.randint(0x20, 0x2FFFF)
                while 0xD800 <= code <= 0xDFFF:
                    code = rng.randint(0x20, 0x2FFFF)
                parts.append(chr(code))
        strings.append("".join(parts))
    return strings


with tempfile.TemporaryDirectory() as work:
    vocabulary = os.path.join(work, "llama-bpe.gguf")
    relabelled_vocabulary(model, vocabulary)
    strings = corpus()
    hex_lines = "".join(s.encode("utf-8").hex() + "\n" for s in strings)
    result = subprocess.run([tokenize_many, vocabulary], input=hex_lines.encode(), capture_output=True, check=True)
    rows = result.stdout.decode().split("\n")[: len(strings)]
    ids = [[int(t) for t in row.split()] for row in rows]
    assert len(ids) == len(strings)

source = ("llama.cpp (llama-cpp-python 0.3.36's copy), SmolLM2-135M-Instruct's vocabulary with "
          "tokenizer.ggml.pre = llama-bpe; add_special and parse_special off")
with open(output, "w", encoding="utf-8") as f:
    f.write('{"source": ' + json.dumps(source) + ',\n"cases": [\n')
    f.write(",\n".join(json.dumps({"text": s, "ids": i}, ensure_ascii=False) for s, i in zip(strings, ids)))
    f.write("\n]}\n")
print(f"{len(strings)} strings, {sum(map(len, ids))} ids -> {output}")

"""Tokenizes strings with the Hugging Face `tokenizers` package.

usage: python hf_tokenize.py TOKENIZER.json STRINGS.json OUTPUT.json
STRINGS.json is a JSON array of strings; OUTPUT.json receives {"ids": [[...], ...], "decoded": [...]},
the ids of each string without special tokens added and without parsing control-token text, and the
text decoded back from those ids."""
import json
import sys

from tokenizers import Tokenizer

tokenizer_path, strings_path, output = sys.argv[1:4]
tokenizer = Tokenizer.from_file(tokenizer_path)
strings = json.load(open(strings_path, encoding="utf-8"))
ids = [tokenizer.encode(s, add_special_tokens=False).ids for s in strings]
decoded = [tokenizer.decode(i, skip_special_tokens=False) for i in ids]
json.dump({"ids": ids, "decoded": decoded}, open(output, "w", encoding="utf-8"))

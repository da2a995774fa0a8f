"""Read a safetensors file with the safetensors package (numpy) and dump names, dtypes, shapes,
float64 sums and the first values as JSON to OUT; given COPY, also save the same tensors with the
package's own writer there (for byte-identity checks).
usage: safetensors_dump.py FILE [COPY] OUT"""
import json
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file, save_file


def main(path, *rest):
    copy, out = (rest[0], rest[1]) if len(rest) == 2 else (None, rest[0])
    tensors = load_file(path)
    with safe_open(path, framework="numpy") as f:
        metadata = f.metadata()
    dump = {"metadata": metadata, "tensors": {}}
    for name, array in tensors.items():
        flat = array.astype(np.float64).reshape(-1) if array.dtype != np.bool_ else array.reshape(-1).astype(np.float64)
        dump["tensors"][name] = {
            "dtype": str(array.dtype),
            "shape": list(array.shape),
            "sum": float(flat.sum()),
            "head": [float(v) for v in flat[:8]],
        }
    with open(out, "w") as f:
        json.dump(dump, f)
    if copy:
        save_file(tensors, copy, metadata=metadata)


if __name__ == "__main__":
    main(*sys.argv[1:])

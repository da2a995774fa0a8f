"""Dump a GGUF file as JSON using gguf-py: metadata (type + value) and, per tensor, its type, shape
(PyTorch order) and the float64 sum / sum of squares of the dequantized values, plus the first values."""
import json
import sys

import numpy as np
from gguf import GGUFReader, GGUFValueType
from gguf.quants import dequantize


def value_of(field):
    kind = field.types[0]
    if kind == GGUFValueType.ARRAY:
        sub = field.types[1] if len(field.types) > 1 else None
        if sub == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        return [field.parts[i].tolist()[0] for i in field.data]
    if kind == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]].tolist()[0]


def main(path, out):
    reader = GGUFReader(path)
    metadata = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        metadata[name] = {"type": [t.name for t in field.types], "value": value_of(field)}
    tensors = []
    for tensor in reader.tensors:
        values = dequantize(tensor.data, tensor.tensor_type).astype(np.float64).reshape(-1)
        tensors.append({
            "name": tensor.name,
            "type": tensor.tensor_type.name,
            "shape": [int(d) for d in reversed(tensor.shape.tolist())],
            "sum": float(values.sum()),
            "sumsq": float((values * values).sum()),
            "head": [float(v) for v in values[:8]],
        })
    with open(out, "w") as f:
        json.dump({"metadata": metadata, "tensors": tensors, "alignment": reader.alignment}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

"""Quantize float32 values (raw little-endian file) with gguf-py's reference quantizer.
usage: gguf_quantize.py TYPE IN.f32 ROW_LENGTH OUT.bin"""
import sys

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import quantize

kind, source, row, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
values = np.fromfile(source, dtype="<f4").reshape(-1, row)
quantize(values, GGMLQuantizationType[kind]).tofile(out)

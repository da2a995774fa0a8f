"""Byte-exact test oracle: ggml's own reference quantizers, loaded with ctypes.

libggmlquants.so is ggml/src/ggml-quants.c (llama.cpp vendored in llama-cpp-python
0.3.36) plus ggml_stubs.c, compiled as described in ORACLE.md.

    from oracle import quantize, dequantize
    raw = quantize("Q4_K", np.random.randn(512).astype(np.float32))  # -> bytes
    back = dequantize("Q4_K", raw)                                     # -> float32 array

quantize() calls quantize_row_<type>_ref, which is also what ggml's quantize_<type>()
(and therefore llama-quantize) runs when no importance matrix is supplied.

The environment variable GGML_QUANTS_LIB can point to another build of the library
(for example one compiled with FMA contraction) for comparisons.
"""
import ctypes
import os

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_LIB_PATH = os.environ.get("GGML_QUANTS_LIB", os.path.join(_HERE, "libggmlquants.so"))
_lib = ctypes.CDLL(_LIB_PATH)

# type name -> (elements per block, bytes per block, C suffix)
BLOCK = {
    "Q4_0": (32, 18, "q4_0"),
    "Q4_1": (32, 20, "q4_1"),
    "Q5_0": (32, 22, "q5_0"),
    "Q5_1": (32, 24, "q5_1"),
    "Q8_0": (32, 34, "q8_0"),
    "Q4_K": (256, 144, "q4_K"),
    "Q6_K": (256, 210, "q6_K"),
    # extras, not part of the original request but the same mechanism
    "Q2_K": (256, 84, "q2_K"),
    "Q3_K": (256, 110, "q3_K"),
    "Q5_K": (256, 176, "q5_K"),
}

_quant = {}
_dequant = {}
for _name, (_, _, _sfx) in BLOCK.items():
    f = getattr(_lib, "quantize_row_%s_ref" % _sfx)
    f.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    f.restype = None
    _quant[_name] = f
    g = getattr(_lib, "dequantize_row_%s" % _sfx)
    g.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
    g.restype = None
    _dequant[_name] = g


def _norm(type_name):
    t = type_name.upper().replace("GGML_TYPE_", "")
    if t not in BLOCK:
        raise ValueError("unsupported type %r (have %s)" % (type_name, ", ".join(BLOCK)))
    return t


def quantize(type_name, x):
    """Quantize a float32 array (flattened, C order) with ggml's *_ref quantizer -> bytes."""
    t = _norm(type_name)
    qk, nbytes, _ = BLOCK[t]
    a = np.ascontiguousarray(np.asarray(x, dtype=np.float32).reshape(-1))
    n = a.size
    if n % qk:
        raise ValueError("%s needs a multiple of %d elements, got %d" % (t, qk, n))
    out = ctypes.create_string_buffer((n // qk) * nbytes)
    _quant[t](a.ctypes.data, ctypes.addressof(out), n)
    return out.raw


def dequantize(type_name, raw):
    """ggml's dequantize_row_<type> -> float32 array."""
    t = _norm(type_name)
    qk, nbytes, _ = BLOCK[t]
    raw = bytes(raw)
    if len(raw) % nbytes:
        raise ValueError("%s data must be a multiple of %d bytes" % (t, nbytes))
    n = (len(raw) // nbytes) * qk
    out = np.empty(n, dtype=np.float32)
    buf = ctypes.create_string_buffer(raw, len(raw))
    _dequant[t](ctypes.addressof(buf), out.ctypes.data, n)
    return out


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    v = rng.standard_normal(256).astype(np.float32)
    for t in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q6_K"):
        b = quantize(t, v)
        err = np.abs(dequantize(t, b) - v).max()
        print("%-5s %4d bytes  max|err|=%.4f  first16=%s" % (t, len(b), err, b[:16].hex()))

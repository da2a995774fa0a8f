"""Write the golden file (path in argv[1]): float32 inputs and ggml reference outputs, as hex."""
import json, os, sys

import numpy as np
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import oracle
rng = np.random.default_rng(2024)
i = np.arange(512, dtype=np.float64)
cases = {
  "ramp": ((i - 255.5) / 64.0).astype(np.float32),
  "normal_seed2024": rng.standard_normal(512).astype(np.float32),
  "halves_ties": (rng.integers(-16, 16, 512) / 2).astype(np.float32),
  "mixed_scale": (rng.standard_normal(512) * np.repeat(10.0 ** rng.uniform(-3, 1, 32), 16)).astype(np.float32),
  "positive_only": rng.random(512).astype(np.float32),
  "zeros": np.zeros(512, np.float32),
  "tiny_1e-8": (rng.standard_normal(512) * 1e-8).astype(np.float32),
}
out = {"source": "ggml quantize_row_*_ref from llama-cpp-python 0.3.36 (llama.cpp 0c1e57098bba), built with -O2 -ffp-contract=off on x86-64", "cases": []}
for name, x in cases.items():
    e = {"name": name, "n": int(x.size), "input_f32le_hex": x.astype("<f4").tobytes().hex(), "outputs": {}}
    for t in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q6_K"):
        e["outputs"][t] = oracle.quantize(t, x).hex()
    out["cases"].append(e)
json.dump(out, open(sys.argv[1], "w"), indent=1)
print("wrote", len(out["cases"]), "cases")

#!/usr/bin/env python3
"""An out-of-process Lathe pass (protocol lathe-pass/1, see formats/plugin-protocol.md): clamps every
weight of the selected matrices to ±k standard deviations of its tensor.

options: {"k": 3.0, "pattern": "regex over tensor names (default: every matrix)"}
Needs numpy and the safetensors package."""
import json
import re
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

request = json.load(sys.stdin)
if request.get("protocol") != "lathe-pass/1":
    json.dump({"error": f"unsupported protocol {request.get('protocol')}"}, sys.stdout)
    sys.exit(0)

options = request.get("options") or {}
k = float(options.get("k", 3.0))
pattern = re.compile(options.get("pattern", "."))
selected = [t["name"] for t in request["tensors"] if len(t["shape"]) == 2 and pattern.search(t["name"])]

if request["action"] == "plan":
    json.dump({"changes": [{"name": name} for name in selected], "notes": [f"clamp {len(selected)} matrices at ±{k}σ"]}, sys.stdout)
elif request["action"] == "apply":
    tensors = load_file(request["input"])
    clamped = 0
    for name, values in tensors.items():
        limit = k * float(values.std(dtype=np.float64))
        clamped += int((np.abs(values) > limit).sum())
        tensors[name] = np.clip(values, -limit, limit).astype(np.float32)
    save_file(tensors, request["output"])
    json.dump({"notes": [f"clamped {clamped} values in {len(tensors)} tensors"]}, sys.stdout)
else:
    json.dump({"error": f"unknown action {request['action']}"}, sys.stdout)

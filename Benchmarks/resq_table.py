#!/usr/bin/env python3
"""Formats the ResQ results (the JSON of `lathe verify --json` written by resq_results.sh) as Markdown."""
import json
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/results")


def load(name):
    path = out / f"{name}.json"
    if not path.exists():
        return []
    data = json.loads(path.read_text())
    return data if isinstance(data, list) else [data]


def recipe(entry):
    return Path(entry["candidate"]).name.removesuffix(".safetensors")


def row(label, entry, base):
    ppl = entry["candidate_perplexity"]
    return (f"| {label} | `{recipe(entry)}` | {ppl:.3f} | {ppl / base:.3f}× | {entry['kl']['mean']:.4f} "
            f"| {100 * entry['top1_agreement']:.1f} % |")


lines = []
main = {recipe(e): e for e in load("main")}
if main:
    first = next(iter(main.values()))
    base = first["base_perplexity"]
    lines += [
        f"WikiText-2 test, `--protocol all --ctx 2048`, first {first['chunks']} windows ({first['scored_tokens']} "
        "scored tokens); KL(FP ‖ model) and top-1 agreement from the same run of `lathe verify`.",
        "",
        "| method | recipe | PPL | × FP | mean KL | top-1 |",
        "|---|---|---|---|---|---|",
        f"| FP (the Q4_1 GGUF, decoded) | — | {base:.3f} | 1.000× | 0 | 100 % |",
    ]
    labels = {"rtn-w4a4kv4": "RTN W4A4KV4", "quarot-w4a4kv4": "QuaRot-style W4A4KV4 (GPTQ)",
              "resq-w4a4kv4": "ResQ W4A4KV4 (GPTQ)", "resq-w4a8kv8": "ResQ W4A8KV8 (GPTQ)"}
    for key, label in labels.items():
        if key in main:
            lines.append(row(label, main[key], base))
    lines.append("")
    ppl = {k: v["candidate_perplexity"] for k, v in main.items()}
    if {"rtn-w4a4kv4", "quarot-w4a4kv4", "resq-w4a4kv4", "resq-w4a8kv8"} <= ppl.keys():
        resq, quarot, rtn, w8 = (ppl["resq-w4a4kv4"], ppl["quarot-w4a4kv4"], ppl["rtn-w4a4kv4"],
                                 ppl["resq-w4a8kv8"])

        def verdict(ok):
            return "met" if ok else "**not met**"
        lines += [
            "| target | result | |",
            "|---|---|---|",
            f"| ResQ W4A4KV4 ≤ 1.20 × FP | {resq / base:.3f}× | {verdict(resq / base <= 1.20)}"
            + ("" if resq / base <= 1.20 else f" (by {resq / base - 1.20:.3f}×)") + " |",
            f"| ResQ ≥ 10 % below QuaRot-style | {100 * (1 - resq / quarot):.1f} % below | "
            f"{verdict(resq <= 0.9 * quarot)} |",
            f"| ResQ W4A8KV8 ≤ 1.02 × FP | {w8 / base:.3f}× | {verdict(w8 / base <= 1.02)}"
            + ("" if w8 / base <= 1.02 else f" (by {w8 / base - 1.02:.3f}×)") + " |",
            f"| ResQ < QuaRot-style < RTN | {resq:.2f} < {quarot:.2f} < {rtn:.2f} | {verdict(resq < quarot < rtn)} |",
            "",
        ]

ablations = load("ablations")
if ablations:
    base = ablations[0]["base_perplexity"]
    labels = {"resq-w4a4kv4-rtn": "RTN weights instead of GPTQ", "resq-w4a4kv4-no-ua": "without U_A",
              "resq-w4a4kv4-no-ub": "without U_B", "resq-w4a4kv4-no-uc": "without U_C",
              "resq-w4a4kv4-no-ud": "without U_D", "resq-w4a4kv4-rank0": "rank fraction 0",
              "resq-w4a4kv4-rank1_16": "rank fraction 1/16", "resq-w4a4kv4-rank1_4": "rank fraction 1/4"}
    byname = {recipe(e): e for e in ablations}
    lines += [
        f"Ablations of ResQ W4A4KV4 (GPTQ, rank 1/8 unless named), same protocol, {ablations[0]['chunks']} windows:",
        "",
        "| ablation | recipe | PPL | × FP | mean KL | top-1 |",
        "|---|---|---|---|---|---|",
    ]
    if "resq-w4a4kv4" in main:
        lines.append(row("full ResQ (rank 1/8)", main["resq-w4a4kv4"], base))
    for key, label in labels.items():
        if key in byname:
            lines.append(row(label, byname[key], base))
    lines.append("")

weight = load("weight-only")
if weight:
    e = weight[0]
    ratio = e["perplexity_ratio"]
    kl = e["kl"]["mean"]
    lines += [
        f"Weight-only, `--protocol llama --ctx 512 --chunks {e['chunks']}` (llama-perplexity's protocol); llama.cpp's "
        "rows are its own quantizers on this model as the issue quotes them:",
        "",
        "| quantizer | PPL / F32 | mean KL |",
        "|---|---|---|",
        "| llama.cpp Q8_0 | 1.007× | 0.004 |",
        "| llama.cpp Q4_K_M | 1.065× | 0.057 |",
        "| llama.cpp Q4_0 | 1.253× | 0.294 |",
        f"| Lathe `resq-w4a16` | {ratio:.3f}× | {kl:.3f} |",
        "",
        f"Target `resq-w4a16` at or below Q4_K_M on both: PPL {'met' if ratio <= 1.065 else '**not met**'}, "
        f"KL {'met' if kl <= 0.057 else '**not met**'}.",
        "",
    ]

print("\n".join(lines))

"""Conversion benchmark for BENCHMARKS.md: each SmolLM2 conversion timed with `lathe convert`, with the
gguf-py peer, and with `cp` of the same output bytes (the floor), side by side in one run. Reports the
median wall time and peak RSS (the process's maximum resident set, from wait4) of each.

The commands of a conversion take turns, one repetition of each per round, so a slow stretch of the
machine's disk falls on all of them alike; before each run the previous output is removed and `sync`
waits for the disk to be idle (untimed), so no command pays for the writeback another left behind.

usage: convert_bench.py LATHE MODEL.gguf WORKDIR [REPETITIONS]"""
import os
import shutil
import statistics
import subprocess
import sys
import time

lathe, model, work = sys.argv[1], sys.argv[2], sys.argv[3]
repetitions = int(sys.argv[4]) if len(sys.argv) > 4 else 3
python = sys.executable
peer = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers", "gguf_py_convert.py")
os.makedirs(work, exist_ok=True)
st = os.path.join(work, "smol-f32.safetensors")


def measure(argv):
    """Wall seconds and peak RSS (MB) of one run."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"failed: {' '.join(argv)}")
    return elapsed, usage.ru_maxrss / 1024


def remove(path):
    if os.path.isfile(path):
        os.remove(path)
    elif os.path.exists(path):
        shutil.rmtree(path)


def measure_clean(argv, output):
    """One run from a clean start: its output gone and nothing left to write back."""
    if output is not None:
        remove(output)
    os.sync()
    return measure(argv)


def summary(samples):
    return statistics.median(s[0] for s in samples), max(s[1] for s in samples)


cases = [
    ("GGUF Q4_1 → safetensors F32", [lathe, "convert", model, "-o", st],
     [python, peer, "to-safetensors", model, os.path.join(work, "peer.safetensors")], st),
]
for kind in ["f16", "q8_0", "q4_0"]:
    out = os.path.join(work, f"smol-{kind}.gguf")
    cases.append((f"safetensors F32 → GGUF {kind.upper()}", [lathe, "convert", st, "-o", out, "--type", kind],
                  [python, peer, "to-gguf", st, model, os.path.join(work, f"peer-{kind}.gguf"), kind], out))

print("| conversion | output | lathe median s | lathe peak RSS MB | cp median s | lathe / cp | cp+fsync median s | lathe / cp+fsync | reading the input s | gguf-py median s | gguf-py peak RSS MB | gguf-py / lathe |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for title, lathe_argv, peer_argv, output in cases:
    copy = output + ".cp"
    peer_output = peer_argv[-2] if "to-gguf" in peer_argv else peer_argv[-1]
    source = lathe_argv[2]
    measure_clean(lathe_argv, output)  # a warm-up
    commands = {
        "lathe": (lathe_argv, output),
        "cp": (["cp", output, copy], copy),
        # Lathe syncs its output before renaming it into place, so the comparable floor also syncs.
        "cp+fsync": (["dd", f"if={output}", f"of={copy}", "bs=4M", "conv=fsync", "status=none"], copy),
        # The other floor: a conversion must read its whole input (page-cached, as Lathe's is here).
        "read": (["sh", "-c", f"cat '{source}' > /dev/null"], None),
        "peer": (peer_argv, peer_output),
    }
    samples = {name: [] for name in commands}
    for _ in range(repetitions):
        # Lathe runs first in a round, so the floors copy the output it has just written.
        for name, (argv, target) in commands.items():
            samples[name].append(measure_clean(argv, target))
    lathe_s, lathe_rss = summary(samples["lathe"])
    cp_s, _ = summary(samples["cp"])
    sync_s, _ = summary(samples["cp+fsync"])
    read_s, _ = summary(samples["read"])
    peer_s, peer_rss = summary(samples["peer"])
    size = os.path.getsize(output) / 2**20
    print(f"| {title} | {size:.0f} MiB | {lathe_s:.2f} | {lathe_rss:.0f} | {cp_s:.2f} | {lathe_s / cp_s:.1f}× | "
          f"{sync_s:.2f} | {lathe_s / sync_s:.1f}× | {read_s:.2f} | {peer_s:.2f} | {peer_rss:.0f} | {peer_s / lathe_s:.1f}× |", flush=True)

#!/usr/bin/env bash
# The scale run of RELIABILITY.md: a synthetic Llama-shaped checkpoint of at least 20 GiB, converted
# safetensors -> GGUF Q4_0 and through a data-free recipe, each inside a memory cgroup limited to
# 2 GiB (page cache included), with the process's peak RSS and the cgroup's peak usage recorded.
# Needs root and a cgroup memory controller (v1 or v2), and about 30 GiB of free disk in WORKDIR.
# Usage: Benchmarks/scale.sh LATHE LATHE_BENCH WORKDIR
set -euo pipefail
lathe=$1 bench=$2 work=$3
limit=$((2 << 30))
mkdir -p "$work"
model=$work/synthetic-20g.safetensors

if [ -w /sys/fs/cgroup/memory ]; then
  cgroup=/sys/fs/cgroup/memory/lathe-scale
  mkdir -p "$cgroup"
  echo "$limit" >"$cgroup/memory.limit_in_bytes"
  peak_file=$cgroup/memory.max_usage_in_bytes
  reset_peak() { echo 0 >"$peak_file"; }
elif [ -w /sys/fs/cgroup/cgroup.subtree_control ]; then
  cgroup=/sys/fs/cgroup/lathe-scale
  mkdir -p "$cgroup"
  echo "$limit" >"$cgroup/memory.max"
  peak_file=$cgroup/memory.peak
  reset_peak() { echo 0 >"$peak_file" 2>/dev/null || true; }
else
  echo "scale: no writable cgroup memory controller (run as root)" >&2
  exit 1
fi

# Runs a command inside the cgroup; prints wall time, peak RSS and the cgroup's peak usage.
limited() {
  local label=$1
  shift
  reset_peak
  # Cold caches: the model is read from disk, and its pages are charged to the limited cgroup.
  sync
  [ -w /proc/sys/vm/drop_caches ] && echo 1 >/proc/sys/vm/drop_caches
  local started=$(date +%s)
  /usr/bin/time -f "%M" -o "$work/rss.txt" bash -c 'echo $$ >"$0/cgroup.procs"; exec "$@"' "$cgroup" "$@" &
  local timer=$! anon=0 pid sample
  # The kernel keeps no peak of anonymous memory alone: sample it (RssAnon) five times a second.
  while kill -0 "$timer" 2>/dev/null; do
    pid=$(pgrep -P "$timer" | head -1 || true)
    sample=$(awk '/^RssAnon/ {print $2}' "/proc/${pid:-0}/status" 2>/dev/null || true)
    [ "${sample:-0}" -gt "$anon" ] && anon=$sample
    sleep 0.2
  done
  wait "$timer"
  printf '| %s | %d s | %.0f MiB | %.0f MiB | %.0f MiB |\n' "$label" $(($(date +%s) - started)) \
    "$(echo "$anon / 1024" | bc -l)" "$(echo "$(cat "$work/rss.txt") / 1024" | bc -l)" \
    "$(echo "$(cat "$peak_file") / 1048576" | bc -l)"
}

if [ ! -f "$model" ]; then
  "$bench" synthesize -o "$model"
fi
echo "| step | wall | peak anonymous memory (sampled) | peak RSS (mapped file pages included) | cgroup peak (2 GiB limit, page cache included) |"
echo "|---|---|---|---|---|"
limited "convert --type q4_0 ($(du -h --apparent-size "$model" | cut -f1) F32 safetensors)" \
  "$lathe" convert "$model" -o "$work/synthetic-q4_0.gguf" --type q4_0 --force
limited "convert --recipe Benchmarks/scale-data-free.yaml (fuse-norms, Q4_0)" \
  "$lathe" convert "$model" -o "$work/synthetic-fused-q4_0.gguf" --recipe Benchmarks/scale-data-free.yaml --force
ls -l "$work"/synthetic-*.gguf | awk '{printf "output %s: %.2f GiB\n", $NF, $5 / 2^30}'

#!/usr/bin/env bash
# Runs every fuzz harness (built by `make fuzz`) for a bounded number of executions and prints one
# line per harness: executions, rate, time, new corpus entries, and the findings (crash, hang over
# 1 s, allocation over the cap, leak). Usage: Fuzz/run.sh WORKDIR RUNS [HARNESS...]
#
# Limits, the same for every harness: inputs up to 64 KiB; 1 s per input; no single allocation
# over 160 MiB (the fixed cap: zstd's default decoder window is 128 MiB, allocated whatever the
# input's size; 2 x 64 KiB of input is negligible next to it); 2 GiB resident at most.
set -euo pipefail
work=$1 runs=$2
shift 2
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(gguf safetensors lpack hf recipe archive)
bin=Fuzz/.build/release
mkdir -p "$work/findings" "$work/logs"
status=0
for h in "${harnesses[@]}"; do
  mkdir -p "$work/corpus/$h" "$work/extra/$h"
  before=$(ls "$work/corpus/$h" | wc -l)
  started=$(date +%s)
  # malloc_context_size=0: no allocation stacks (a third of the time under ASan); rerun a finding
  # without it to see where the memory came from. No Swift backtracer: libFuzzer reports the crash.
  if SWIFT_BACKTRACE=enable=no ASAN_OPTIONS=malloc_context_size=0 "$bin/fuzz-$h" "$work/corpus/$h" "$work/extra/$h" \
    -runs="$runs" -max_len=65536 -timeout=1 -malloc_limit_mb=160 -rss_limit_mb=2048 \
    -artifact_prefix="$work/findings/$h-" -print_final_stats=1 >"$work/logs/$h.log" 2>&1; then
    outcome="no findings"
  else
    outcome="FINDING: $(grep -m1 -E 'ERROR|Fatal|SUMMARY' "$work/logs/$h.log" || echo "exit status $?")"
    status=1
  fi
  executed=$(grep -m1 'stat::number_of_executed_units' "$work/logs/$h.log" | awk '{print $2}')
  rate=$(grep -m1 'stat::average_exec_per_sec' "$work/logs/$h.log" | awk '{print $2}')
  printf '%-12s %10s executions %6s/s %5ss  corpus %4d -> %4d  %s\n' "$h" "${executed:-?}" "${rate:-?}" \
    "$(($(date +%s) - started))" "$before" "$(ls "$work/corpus/$h" | wc -l)" "$outcome"
done
exit $status

#!/usr/bin/env bash
# Builds every ResQ-issue recipe from the SmolLM2 GGUF and compares them with the original model.
# Usage: Benchmarks/resq_results.sh LATHE MODEL OUT [CHUNKS]
# Writes OUT/<recipe>.safetensors, OUT/*.json (lathe verify --json), OUT/convert-resq.time (GNU time -v
# of the resq-w4a4kv4 conversion) and OUT/results.md (the tables, via Benchmarks/resq_table.py).
set -euo pipefail
lathe=$1; model=$2; out=$3; chunks=${4:-20}
text=data/wikitext-2/wiki.test.raw
mkdir -p "$out"

convert() {  # recipe
    local target="$out/$1.safetensors"
    if [[ -f "$target" && "${REUSE:-0}" == 1 ]]; then return; fi
    echo "== convert $1" >&2
    if [[ "$1" == resq-w4a4kv4 ]]; then
        /usr/bin/time -v "$lathe" convert "$model" --recipe "$1" -o "$target" --force --verbose 2> "$out/convert-resq.log"
        grep -E "Elapsed|Maximum resident" "$out/convert-resq.log" > "$out/convert-resq.time"
        tr "\r" "\n" < "$out/convert-resq.log" | grep -E "^step [0-9]+/[0-9]+ .*s, peak|done in" > "$out/convert-resq.steps" || true
    else
        "$lathe" convert "$model" --recipe "$1" -o "$target" --force 2> "$out/convert-$1.log"
    fi
}

verify() {  # name protocol ctx chunks recipes...
    local name=$1 protocol=$2 ctx=$3 n=$4; shift 4
    local files=()
    for recipe in "$@"; do files+=("$out/$recipe.safetensors"); done
    echo "== verify $name: $*" >&2
    "$lathe" verify "$model" "${files[@]}" --text "$text" --protocol "$protocol" --ctx "$ctx" --chunks "$n" --json \
        > "$out/$name.json" 2> "$out/verify-$name.log"
}

main=(rtn-w4a4kv4 quarot-w4a4kv4 resq-w4a4kv4 resq-w4a8kv8)
for recipe in "${main[@]}"; do convert "$recipe"; done
verify main all 2048 "$chunks" "${main[@]}"

convert resq-w4a16
verify weight-only llama 512 40 resq-w4a16

ablations=(resq-w4a4kv4-rtn resq-w4a4kv4-no-ua resq-w4a4kv4-no-ub resq-w4a4kv4-no-uc resq-w4a4kv4-no-ud
    resq-w4a4kv4-rank0 resq-w4a4kv4-rank1_16 resq-w4a4kv4-rank1_4)
for recipe in "${ablations[@]}"; do convert "$recipe"; done
verify ablations all 2048 "$chunks" "${ablations[@]}"

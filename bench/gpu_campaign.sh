#!/usr/bin/env bash
# One call that turns a lent GPU's minutes into convc's numbers (docs/triton.md, "The GPU campaign").
#
#   bench/gpu_campaign.sh OUTDIR BUDGET_S [--dry]
#
# Installs convc offline (pip without an index, else a PYTHONPATH mapping that needs no pip), then runs
# phases, each capped by the budget left and each writing its results the moment it ends:
#   1. smoke.jsonl         per-layer error vs torch float64 and time vs cuDNN (ResNet-50, VGG-16 layers)
#   2. bench_untuned.jsonl whole-model bench, triton vs torch, tuning off (one JSON line per row)
#   3. bench_compile.jsonl torch.compile in its own capped call, then batch 1 with CUDA graphs: convc's
#                          captured module (TMA descriptors drawn while capturing) vs reduce-overhead,
#                          then VGG-16 batch 64 under torch.compile (its goal's baseline)
#   4. gpu_tests.txt       the GPU tests in parallel (-n 8 when pytest-xdist is there)
#   5. bench_tuned.jsonl   the bench again with autotuning, if time remains
#   6. triton_autotune.json the autotune cache (copy it to ~/.cache/convc on the next GPU to start tuned)
# plus environment.json (GPU, driver, versions) and campaign.log (ending with bench/gpu_results.py's
# summary: the goals, measured or not): at most 8 files in OUTDIR. Afterwards
# `python bench/gpu_results.py OUTDIR --save bench/results` writes the record to commit.
# --dry: the CPU interpreter and tiny shapes, so CI can check that the script itself runs.
set -u
OUT=${1:?usage: gpu_campaign.sh OUTDIR BUDGET_S [--dry]}
BUDGET=${2:?usage: gpu_campaign.sh OUTDIR BUDGET_S [--dry]}
DRY=${3:-}
REPO=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
START=$(date +%s)
LOG="$OUT/campaign.log"
PY=${PYTHON:-python3}
export CONVC_CACHE_DIR="$OUT/cache"
mkdir -p "$CONVC_CACHE_DIR"

log() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }
# phase NAME SHARE CMD...: runs CMD with at most SHARE percent of the budget and never more than is left.
phase() {
    local name=$1 share=$2; shift 2
    local cap=$(( BUDGET * share / 100 )) remaining
    remaining=$(left)
    (( cap > remaining - 5 )) && cap=$(( remaining - 5 ))
    if (( cap < 10 )); then log "skip $name: ${remaining}s left"; return 0; fi
    log "start $name (cap ${cap}s)"
    timeout --kill-after=10 "$cap" "$@" >> "$LOG" 2>&1
    log "end $name: exit $?"
}

# ---------------------------------------------------------------- install, offline
if [[ "$DRY" == "--dry" ]]; then
    export TRITON_INTERPRET=1
    SMOKE_ARGS=(--dry) BENCH_ARGS=(--input 3,32,32 --batch 1 --repeat 1 --warmup 0) MODEL=resnet18
    TESTS=(tests/triton/test_static_report.py -k "ctas or waves or loop")
else
    SMOKE_ARGS=() BENCH_ARGS=(--batch 1,64,256 --repeat 20) MODEL=resnet50
    TESTS=(tests/gpu)
fi
if ! "$PY" -c "import convc" 2>/dev/null; then
    if ! "$PY" -m pip install --no-build-isolation --no-deps --no-index -q -e "$REPO" >> "$LOG" 2>&1; then
        # No pip or no setuptools: the same package layout as pyproject's package-dir, by symlinks.
        PKG="$OUT/cache/pkg/convc"
        mkdir -p "$PKG"
        for entry in "$REPO"/convc/*; do ln -sfn "$entry" "$PKG/$(basename "$entry")"; done
        for sub in passes backends models; do ln -sfn "$REPO/$sub" "$PKG/$sub"; done
        export PYTHONPATH="$OUT/cache/pkg${PYTHONPATH:+:$PYTHONPATH}"
        log "installed by PYTHONPATH mapping (pip failed)"
    fi
fi
CONVC=("$PY" -m convc.cli)
"$PY" -c "import json, convc.device_profiles as d; print(json.dumps(d.describe_machine().to_dict(), indent=1))" \
    > "$OUT/environment.json" 2>> "$LOG" || log "environment: failed"
log "machine: $(tr -d '\n' < "$OUT/environment.json" | head -c 300)"

# ---------------------------------------------------------------- phases
cd "$REPO"
phase smoke 25 "$PY" bench/gpu_smoke.py "$OUT/smoke.jsonl" "${SMOKE_ARGS[@]}"
phase bench_untuned 25 "${CONVC[@]}" bench "$MODEL" --backends triton,torch --dtype float16 --no-autotune \
    --jsonl "$OUT/bench_untuned.jsonl" "${BENCH_ARGS[@]}"
[[ "$DRY" == "--dry" ]] || phase bench_vgg 10 "${CONVC[@]}" bench vgg16 --backends triton,torch --dtype float16 \
    --no-autotune --jsonl "$OUT/bench_untuned.jsonl" --batch 64 --repeat 20
[[ "$DRY" == "--dry" ]] || phase bench_compile 15 "${CONVC[@]}" bench "$MODEL" --backends torch-compile --dtype float16 \
    --jsonl "$OUT/bench_compile.jsonl" "${BENCH_ARGS[@]}"
[[ "$DRY" == "--dry" ]] || phase bench_graphs 10 "${CONVC[@]}" bench "$MODEL" --cuda-graphs --batch 1 \
    --backends triton,torch-compile --dtype float16 --no-autotune --jsonl "$OUT/bench_compile.jsonl" --repeat 50
[[ "$DRY" == "--dry" ]] || phase bench_vgg_compile 10 "${CONVC[@]}" bench vgg16 --backends torch-compile \
    --dtype float16 --jsonl "$OUT/bench_compile.jsonl" --batch 64 --repeat 20
XDIST=()
"$PY" -c "import xdist" 2>/dev/null && XDIST=(-n 8)
phase gpu_tests 30 bash -c '"$0" -m pytest -q "${@}" > "'"$OUT"'/gpu_tests.txt" 2>&1' "$PY" "${XDIST[@]}" "${TESTS[@]}"
phase bench_tuned 100 "${CONVC[@]}" bench "$MODEL" --backends triton --dtype float16 \
    --jsonl "$OUT/bench_tuned.jsonl" "${BENCH_ARGS[@]}"
[[ -f "$CONVC_CACHE_DIR/triton_autotune.json" ]] && cp "$CONVC_CACHE_DIR/triton_autotune.json" "$OUT/"
# The whole-model table and the issue's goals, measured or not, into the log (--save writes the record).
"$PY" bench/gpu_results.py "$OUT" >> "$LOG" 2>&1 || log "gpu_results: failed"
rm -rf "$OUT/cache"
log "done in $(( $(date +%s) - START ))s; results: $(cd "$OUT" && ls | tr '\n' ' ')"

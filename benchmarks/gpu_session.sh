#!/usr/bin/env bash
# Everything this repo measures on a GPU, in one call of at most ~9.5 minutes, most important first:
#   1. benchmarks/gpu_experiment.sh: each determinism mode trained twice in fresh processes (cross-process
#      determinism on CUDA, the mAP spread per mode);
#   2. benchmarks/kitti_smoke.py: the real-KITTI recipe (Darknet-53, 1248x384, cfg/kitti.yaml's lr) through
#      burn-in and 200 steps at its peak lr: NaN or not, max loss, images/s, peak memory;
#   3. benchmarks/loop_profile.py on the experiment's config: whole loop / step on the GPU;
#   4. benchmarks/grid_parallel.py: a grid's runs one per GPU at once (--jobs N --devices 0-(N-1)) against one at
#      a time: wall time, and every run's bits equal to its sequential twin;
#   5. benchmarks/gpu_bench.sh: the throughput grid, with the time that is left.
# Everything (logs, tables, JSON, reports, figures) is packed into one archive, $OUT/gpu-session.tgz (or
# .cache/gpu-session.tgz without $OUT), so that a machine that returns only a few files returns all of it.
#
#   bash benchmarks/gpu_session.sh           # one GPU
#   bash benchmarks/gpu_session.sh --smoke   # the same path on CPU with the tiny configs (a few minutes)
set -uo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHON="$PY" PYTHONUNBUFFERED=1
SMOKE="${1:-}"
DEST="${OUT:-.cache}"
WORK=$(mktemp -d)
START=$(date +%s)
SESSION_S="${SESSION_S:-560}"        # the whole script: later stages get what is left
EXPERIMENT_S="${EXPERIMENT_S:-330}"
SMOKE_S="${SMOKE_S:-110}"
PROFILE_S="${PROFILE_S:-50}"
GRID_S="${GRID_S:-90}"
if [[ "$SMOKE" == "--smoke" ]]; then DEVICE=cpu; PROFILE=(--smoke); GRID=(--smoke); else
    DEVICE=cuda; PROFILE=(--config cfg/gpu-experiment.yaml --device cuda --set epochs=4)
    NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    NGPU=$(( ${NGPU:-0} > 0 ? NGPU : 1 ))  # one run per GPU at once, at least two runs in the grid
    GRID=(--devices "0-$(( NGPU - 1 ))" --jobs "$NGPU" --rounds 1 --seeds "$(seq -s, 1 $(( NGPU > 2 ? NGPU : 2 )))"); fi

left() { echo $(( SESSION_S - ($(date +%s) - START) )); }

# stage NAME LIMIT_S COMMAND...: run under `timeout` within the session's remaining time; the log goes to $WORK.
stage() {
    local name=$1 limit=$2; shift 2
    local budget; budget=$(left)
    (( limit > budget )) && limit=$budget
    if (( limit < 30 )); then echo "=== $name: skipped, ${budget} s left"; return 0; fi
    echo "=== $name (limit ${limit} s)"
    timeout --signal=TERM --kill-after=5 "$limit" "$@" 2>&1 | tee "$WORK/$name.log"
    local rc=${PIPESTATUS[0]}
    (( rc != 0 )) && echo "=== $name: exit $rc" && RC=1
    return 0
}

main() {
    RC=0
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); git $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    "$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__,
              "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
              "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")'
    if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version --format=csv; fi
    stage experiment "$EXPERIMENT_S" env EXPERIMENT_DIR="$WORK/runs" BUDGET_S="$EXPERIMENT_S" OUT="$WORK" \
        bash benchmarks/gpu_experiment.sh $SMOKE
    for group in "$WORK"/runs/*/; do  # the reports' figures, small; the checkpoints stay behind
        [[ -d "$group" ]] || continue
        name=$(basename "$group")
        for f in "$group"*.png "$group"report.json; do [[ -f "$f" ]] && cp "$f" "$WORK/$name-$(basename "$f")"; done
        cp "$group"r1/env.json "$WORK/$name-env.json" 2>/dev/null
    done
    stage kitti-smoke "$SMOKE_S" "$PY" benchmarks/kitti_smoke.py $SMOKE --device "$DEVICE" --project "$WORK/smoke"
    stage loop-profile "$PROFILE_S" "$PY" benchmarks/loop_profile.py "${PROFILE[@]}" --json "$WORK/loop-profile.json"
    stage grid-jobs "$GRID_S" "$PY" benchmarks/grid_parallel.py "${GRID[@]}" --json "$WORK/grid-parallel.json"
    local bench; bench=$(left)
    stage throughput "$bench" env BUDGET_S="$(( bench - 10 ))" OUT="$WORK" bash benchmarks/gpu_bench.sh $SMOKE
    echo "=== done in $(( $(date +%s) - START )) s, exit $RC"
    return $RC
}

mkdir -p "$DEST"
main 2>&1 | tee "$WORK/session.log"
rc=${PIPESTATUS[0]}
tar -czf "$DEST/gpu-session.tgz" -C "$WORK" --exclude runs --exclude smoke .
exit $rc

#!/usr/bin/env bash
# The price of determinism on one GPU, in at most 5 minutes: benchmarks/train_throughput.py on CUDA, Darknet-53
# YOLOv3 (cfg/yolov3-kitti.cfg), stages in priority order, each under `timeout` and a deadline for the whole script.
#
#   bash benchmarks/gpu_bench.sh            # one GPU; JSON per stage into $OUT if set, else benchmarks/results/
#   bash benchmarks/gpu_bench.sh --smoke    # the same stage path on CPU, tiny (CI): train_throughput.py --smoke
#
# Stages (each its own train_throughput.py invocation; every configuration runs in two fresh processes):
#   1. 416x416  batch 64  bf16 + channels_last  strict (fill off) vs off     (targets: >= 1000 images/s, >= 0.98x)
#   2. 416x416  batch 16  bf16 + channels_last  strict (fill on, fill off) vs off
#   3. 1248x384 batch 16  bf16 + channels_last  strict (fill on, fill off) vs off      (KITTI training input)
#   4. 416x416  batch 32  bf16 + channels_last  strict (fill off) vs off
#   5. 416x416  batch 16  fp32 and bf16, NCHW and channels_last  strict (fill off) vs off
#   6. 1248x384 batch 32  bf16 + channels_last  strict (fill off) vs off
#   7. 1248x384 batch 64  bf16 + channels_last  strict (fill off) vs off      (last: the most memory, may not fit)
# The synthetic set is generated first. A stage that would start with less than MIN_STAGE_S left is skipped; one
# that runs out of time is killed, keeping the JSON written so far (rewritten after each configuration); one that
# fails (e.g. out of memory) is reported and the script goes on, exiting non-zero at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
BUDGET_S="${BUDGET_S:-285}"    # whole script; 15 s of margin under the 5 minutes
MIN_STAGE_S=40                 # two process start-ups, cuDNN set-up and a few steps
STAGE_CAP_S=90                 # no single stage may eat the others' time
START=$(date +%s)
STAMP=$(date -u +%Y%m%d-%H%M%S)
export PYTHONUNBUFFERED=1

if [[ "${1:-}" == "--smoke" ]]; then
    DIR="${OUT:-.cache/benchmarks}"
else
    DIR="${OUT:-benchmarks/results}"
fi
mkdir -p "$DIR"

record_environment() {
    {
        echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        if command -v nvidia-smi >/dev/null; then
            nvidia-smi --query-gpu=name,driver_version --format=csv
        else
            echo "nvidia-smi: not available"
        fi
        "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
                  "cudnn", torch.backends.cudnn.version())'
        echo "cpu: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
        echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    } | tee "$DIR/gpu_bench-env-$STAMP.txt"
}

# stage NAME ARGS...: one train_throughput.py run on CUDA within the remaining budget.
stage() {
    local name=$1; shift
    local left=$(( BUDGET_S - ($(date +%s) - START) ))
    if (( left < MIN_STAGE_S )); then
        echo "== $name: skipped, ${left}s left of the ${BUDGET_S}s budget"
        return 0
    fi
    local limit=$(( left < STAGE_CAP_S ? left : STAGE_CAP_S ))
    echo "== $name (limit ${limit}s)"
    local rc=0
    timeout --signal=TERM --kill-after=5 "$limit" "$PY" benchmarks/train_throughput.py --device cuda \
        --cfg cfg/yolov3-kitti.cfg --precisions bf16 --formats channels_last --cache ram --workers 8 \
        --steps 20 --warmup 5 --check-steps 3 --out "$DIR/throughput-$STAMP-$name.json" "$@" || rc=$?
    if (( rc == 124 || rc == 137 )); then
        echo "== $name: stopped at its ${limit}s limit; partial JSON kept"
    elif (( rc != 0 )); then
        echo "== $name: FAILED (exit $rc)" >&2
        FAILED+=("$name")
    fi
}

FAILED=()
record_environment
if [[ "${1:-}" == "--smoke" ]]; then
    stage smoke-cpu --smoke    # --smoke replaces the device, model, sizes and grid: tiny CPU run, same stage path
else
    timeout 90 "$PY" benchmarks/train_throughput.py --prepare    # the synthetic set, outside the stages' limits
    stage 416-b64 --size 416x416 --batch 64 --modes strict,off --fill off
    stage 416-b16 --size 416x416 --batch 16 --modes strict,off --fill both
    stage 1248-b16 --size 1248x384 --batch 16 --modes strict,off --fill both
    stage 416-b32 --size 416x416 --batch 32 --modes strict,off --fill off
    stage 416-b16-grid --size 416x416 --batch 16 --modes strict,off --fill off --precisions fp32,bf16 \
        --formats nchw,channels_last
    stage 1248-b32 --size 1248x384 --batch 32 --modes strict,off --fill off
    stage 1248-b64 --size 1248x384 --batch 64 --modes strict,off --fill off
fi
echo "== done in $(( $(date +%s) - START ))s; JSON in $DIR"
if (( ${#FAILED[@]} )); then
    echo "failed stages: ${FAILED[*]}" >&2
    exit 1
fi

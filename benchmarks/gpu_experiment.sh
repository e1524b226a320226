#!/usr/bin/env bash
# The reference post's experiment on one GPU in at most 6 minutes: the same training twice in each determinism
# mode, each run in a fresh process (train.py --repeat 2), then one table: mode, bitwise identical, first divergent
# step, mAP@0.5 per run, images/s per run (benchmarks/experiment_table.py).
#
#   bash benchmarks/gpu_experiment.sh           # cfg/gpu-experiment.yaml on CUDA
#   bash benchmarks/gpu_experiment.sh --smoke   # the same path on CPU with cfg/ci-tiny.yaml (CI)
#
# Runs go to $EXPERIMENT_DIR (default runs/gpu-experiment-DATE); when $OUT is set, the table (Markdown and JSON)
# and each mode's report.md are copied there. Modes run fastest first (strict, off, reference: cuDNN disabled), each
# under `timeout` within the budget, so a slow reference run cannot cost the other two their results; a mode that
# fails or runs out of time is reported, the table shows the others, and the script exits non-zero.
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
STAMP=$(date -u +%Y%m%d-%H%M%S)
export PYTHONUNBUFFERED=1
if [[ "${1:-}" == "--smoke" ]]; then  # on the CPU the two runs of a mode train at once, one thread each
    CONFIG=cfg/ci-tiny.yaml; DEVICE=cpu; NAME=gpu-experiment-smoke; PARALLEL=(--jobs 2 --threads 1)
else
    CONFIG=cfg/gpu-experiment.yaml; DEVICE=cuda; NAME=gpu-experiment; PARALLEL=()
fi
PROJECT="${EXPERIMENT_DIR:-runs/$NAME-$STAMP}"
BUDGET_S="${BUDGET_S:-345}"    # whole script; 15 s of margin under the 6 minutes
MIN_MODE_S=30                  # below this a mode cannot finish two runs: skip it
MODE_CAP_S=150                 # no mode may take the others' time
START=$(date +%s)

echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); config $CONFIG on $DEVICE; runs in $PROJECT"
if command -v nvidia-smi >/dev/null; then nvidia-smi --query-gpu=name,driver_version --format=csv; fi
"$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'

groups=()
failed=()
for mode in strict off reference; do
    left=$(( BUDGET_S - ($(date +%s) - START) ))
    if (( left < MIN_MODE_S )); then
        echo "== $mode: skipped, ${left}s left of the ${BUDGET_S}s budget"
        continue
    fi
    limit=$(( left < MODE_CAP_S ? left : MODE_CAP_S ))
    echo "== $mode (limit ${limit}s)"
    rc=0
    timeout --signal=TERM --kill-after=5 "$limit" "$PY" train.py --config "$CONFIG" --device "$DEVICE" \
        --determinism "$mode" --repeat 2 "${PARALLEL[@]}" --project "$PROJECT" --name "$mode" || rc=$?
    if (( rc == 124 || rc == 137 )); then
        echo "== $mode: stopped at its ${limit}s limit"
    elif (( rc != 0 )); then
        echo "== $mode: FAILED, train.py exit $rc" >&2
        failed+=("$mode")
    else
        groups+=("$PROJECT/$mode")
    fi
done
echo "== done in $(( $(date +%s) - START ))s"
if (( ${#groups[@]} )); then
    "$PY" benchmarks/experiment_table.py "${groups[@]}" --json "$PROJECT/experiment-table.json" \
        | tee "$PROJECT/experiment-table.md"
    if [[ -n "${OUT:-}" ]]; then
        cp "$PROJECT/experiment-table.json" "$PROJECT/experiment-table.md" "$OUT/"
        for g in "${groups[@]}"; do cp "$g/report.md" "$OUT/report-$(basename "$g").md"; done
    fi
fi
if (( ${#groups[@]} < 3 )); then
    echo "failed modes: ${failed[*]:-none}; finished: ${#groups[@]} of 3" >&2
    exit 1
fi

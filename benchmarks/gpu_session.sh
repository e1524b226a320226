#!/usr/bin/env bash
# Everything this repo measures on a GPU, in one call of at most ~9.5 minutes, most important first:
#   1. benchmarks/gpu_experiment.sh: each determinism mode trained twice in fresh processes (cross-process
#      determinism on CUDA, the experiment table);
#   2. python compare.py --audit on the strict and the reference runs' last.pt (which gradients differ in one step);
#   3. benchmarks/gpu_bench.sh: throughput per mode, with the time that is left.
# Everything (logs, tables, JSON, the reports and figures) is packed into one archive, $OUT/gpu-session.tgz (or
# .cache/gpu-session.tgz without $OUT), so that a machine that returns only a few files returns all of it.
#
#   bash benchmarks/gpu_session.sh           # one GPU
#   bash benchmarks/gpu_session.sh --smoke   # the same path on CPU with the tiny configs (seconds to minutes)
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
SESSION_S="${SESSION_S:-555}"        # the whole script: stages after the experiment get what is left
EXPERIMENT_S="${EXPERIMENT_S:-300}"
BENCH_S="${BENCH_S:-230}"

main() {
    local rc=0
    echo "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); git $(git rev-parse --short HEAD 2>/dev/null || echo none)"
    "$PY" -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__,
              "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(),
              "gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none")'

    echo "=== 1. experiment ($EXPERIMENT_S s)"
    EXPERIMENT_DIR="$WORK/runs" BUDGET_S="$EXPERIMENT_S" OUT="$WORK" bash benchmarks/gpu_experiment.sh $SMOKE || rc=1

    echo "=== 2. audit"
    for mode in strict reference; do
        ckpt="$WORK/runs/$mode/r1/last.pt"
        if (( SESSION_S - ($(date +%s) - START) < 60 )); then
            echo "audit of $mode skipped: under 60 s left"
        elif [[ -f "$ckpt" ]]; then
            timeout 45 "$PY" compare.py --audit "$ckpt" > "$WORK/audit-$mode.txt" 2>&1 || rc=1
            tail -n 8 "$WORK/audit-$mode.txt"
        else
            echo "no $ckpt: audit of $mode skipped"
        fi
    done
    for group in "$WORK"/runs/*/; do  # the reports' figures, small; the checkpoints stay behind
        name=$(basename "$group")
        for f in "$group"*.png "$group"report.json; do [[ -f "$f" ]] && cp "$f" "$WORK/$name-$(basename "$f")"; done
        for r in "$group"r*/; do cp "$r/summary.json" "$WORK/$name-$(basename "$r")-summary.json" 2>/dev/null; done
        cp "$group"r1/env.json "$WORK/$name-env.json" 2>/dev/null
    done

    left=$(( SESSION_S - ($(date +%s) - START) ))
    bench=$(( left < BENCH_S ? left : BENCH_S ))
    echo "=== 3. throughput (${bench} s)"
    if (( bench >= 60 )); then
        BUDGET_S="$bench" OUT="$WORK" bash benchmarks/gpu_bench.sh $SMOKE || rc=1
    else
        echo "skipped: ${left} s left"
    fi

    echo "=== done in $(( $(date +%s) - START )) s, exit $rc"
    return $rc
}

mkdir -p "$DEST"
main 2>&1 | tee "$WORK/session.log"
rc=${PIPESTATUS[0]}
tar -czf "$DEST/gpu-session.tgz" -C "$WORK" --exclude runs .
exit $rc

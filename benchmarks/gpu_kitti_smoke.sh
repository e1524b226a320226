#!/usr/bin/env bash
# The real-KITTI recipe on one GPU before a long run: cfg/kitti.yaml's model (Darknet-53), resolution (1248x384),
# batch and peak lr on synthetic data, 50 steps of burn-in and 200 past it, strict mode; prints max loss after
# burn-in, NaN or not, images/s (median step, whole loop) and peak memory (benchmarks/kitti_smoke.py).
#
#   bash benchmarks/gpu_kitti_smoke.sh           # one GPU, a few minutes
#   bash benchmarks/gpu_kitti_smoke.sh --smoke   # the same path on CPU with the tiny config (CI)
set -euo pipefail

cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
PROJECT="${KITTI_SMOKE_DIR:-runs/kitti-smoke-$(date -u +%Y%m%d-%H%M%S)}"
if [[ "${1:-}" == "--smoke" ]]; then
    exec "$PY" benchmarks/kitti_smoke.py --smoke --project "$PROJECT"
fi
exec "$PY" benchmarks/kitti_smoke.py --project "$PROJECT"

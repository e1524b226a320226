"""The summary table of benchmarks/gpu_experiment.sh: one row per determinism mode, from its report.json.

    python benchmarks/experiment_table.py runs/gpu-experiment/strict runs/gpu-experiment/reference ...

Each argument is a group directory written by ``train.py --repeat N --project P --name MODE`` (report.json plus
one run directory per repeat). Columns: mode, bitwise identical (weights and per-step loss bits of every pair),
first divergent optimizer step, COCO mAP@0.5 (percent) per run, and two speeds per run: the median of the
per-step ``images_per_s`` of metrics.jsonl (steady state) and steps x images per step / ``train_seconds`` of
summary.json (the whole training loop: worker start-ups, checkpoints and evaluation included).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from training.run_dir import read_metrics  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("groups", nargs="+", type=Path, help="group directories holding report.json")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    return parser


def run_speed(run_dir: Path) -> dict:
    """Median per-step images/s and whole-loop images/s of one finished run directory."""
    with open(run_dir / "config.yaml") as f:
        config = yaml.safe_load(f)
    train = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "train"]
    seconds = json.loads((run_dir / "summary.json").read_text()).get("train_seconds")
    per_step = config["batch_size"] * config["accumulate"]
    return {"median_images_per_s": statistics.median(r["images_per_s"] for r in train) if train else None,
            "loop_images_per_s": len(train) * per_step / seconds if seconds else None}


def mode_row(group: Path) -> dict:
    """One row from a group directory; the mode is read from its first run's config."""
    report = json.loads((group / "report.json").read_text())
    run_dirs = [group / Path(r["name"]).name for r in report["runs"]]
    with open(run_dirs[0] / "config.yaml") as f:
        mode = yaml.safe_load(f)["determinism"]
    divergent = [p["first_divergent_step"] for p in report["pairs"] if p["first_divergent_step"] is not None]
    return {"mode": mode, "group": str(group), "bitwise_identical": report["bitwise_identical"],
            "first_divergent_step": min(divergent, default=None),
            "mAP50": [report["metrics"][r["name"]].get("coco_mAP50") for r in report["runs"]],
            "speed": [run_speed(d) for d in run_dirs]}


def table(rows: list[dict]) -> str:
    def nums(values, digits):
        return " / ".join("n/a" if v is None else f"{v:.{digits}f}" for v in values)
    identical = {True: "yes", False: "no", None: "n/a (one run)"}
    lines = ["| mode | bitwise identical | first divergent step | COCO mAP@0.5 per run (%) | images/s per run "
             "(median step) | images/s per run (whole loop) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {identical[r['bitwise_identical']]} | {r['first_divergent_step'] or 'none'} | "
                     f"{nums(r['mAP50'], 2)} | {nums([s['median_images_per_s'] for s in r['speed']], 1)} | "
                     f"{nums([s['loop_images_per_s'] for s in r['speed']], 1)} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> list[dict]:
    rows = [mode_row(g) for g in args.groups]
    print(table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())

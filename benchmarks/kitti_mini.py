"""What each choice of the real-data preset did: one row per grid of cfg/kitti-mini.yaml variants, scored on the
real KITTI val frames, with the COCO model's zero-shot score beside them.

    python benchmarks/kitti_mini.py runs/tune/base runs/tune/headnone ... \
        --zero-shot 1248x384=out/zs-1248x384/metrics.json --json out.json

Each GROUP is a grid folder of ``train.py --config cfg/kitti-mini.yaml --seeds 1,2,...`` (one run folder per seed).
The first group is the base: every other row names the config keys in which its runs differ from the base's.
Per row, the mean over its runs and each run's value: KITTI AP|R40 Car Easy/Moderate/Hard (IoU 0.7), Pedestrian
and Cyclist Moderate (0.5), COCO mAP@0.5 over the classes the frames hold, Car AP40 Moderate at each evaluation
(by epoch) and the training seconds of a run; for Car AP40 Moderate also the 95% bootstrap interval of the mean
over the runs (experiment/statistics.py, as compare.py computes it). ``--zero-shot NAME=METRICS`` adds a row from an ``eval.py --json``
file (no seeds: a fixed model); ``--eval-size W,H`` adds a row per group with every run's ``last.pt`` scored again
at that input size.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.kitti import KittiDataset  # noqa: E402
from data.transforms import parse_size  # noqa: E402
from evaluation.metrics import evaluate_frames  # noqa: E402
from evaluation.predict import predict  # noqa: E402
from experiment.comparison import RunRecord, load_run, run_metrics  # noqa: E402
from experiment.report import fmt  # noqa: E402
from experiment.statistics import REPORT_RESAMPLES, REPORT_SEED, bootstrap_ci  # noqa: E402
from training import inference  # noqa: E402
from training.config import OPERATIONAL_KEYS  # noqa: E402

COLUMNS = ("kitti_Car_AP40_easy", "kitti_Car_AP40_moderate", "kitti_Car_AP40_hard", "kitti_Pedestrian_AP40_moderate",
           "kitti_Cyclist_AP40_moderate", "coco_mAP50")
# Keys that differ between the seeds of one grid, or that a run records about itself: not a choice of the row.
NOT_CHOICES = set(OPERATIONAL_KEYS) | {"seed", "seed_init", "seed_order", "seed_aug", "threads"}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("groups", nargs="+", type=Path, help="grid folders; the first is the base")
    parser.add_argument("--zero-shot", action="append", default=[], metavar="NAME=METRICS",
                        help="a row from an eval.py metrics JSON (repeatable)")
    parser.add_argument("--eval-size", action="append", default=[], type=lambda t: parse_size(t, "--eval-size"),
                        metavar="W,H",
                        help="also score every run's last.pt at this input size (repeatable): a row per group and size")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    return parser


def group_runs(group: Path) -> list[RunRecord]:
    """The finished runs of a grid folder, in name order."""
    runs = [load_run(p) for p in sorted(group.iterdir()) if (p / "summary.json").is_file()]
    if not runs:
        raise SystemExit(f"error: {group}: no finished run (a folder with summary.json)")
    return runs


def choices(runs: list[RunRecord], base: list[RunRecord]) -> str:
    """The config keys in which ``runs`` differ from ``base`` ('key=value', comma-separated; 'base' for none)."""
    ref, own = base[0].config, runs[0].config
    keys = [k for k in own if k not in NOT_CHOICES and own.get(k) != ref.get(k) and not k.endswith("_sha256")]
    return ", ".join(f"{k}={own[k]}" for k in keys) or "base"


def car_curve(run: RunRecord) -> dict[int, float | None]:
    """Car AP40 Moderate at each evaluation of a run, by epoch (the number of epochs trained)."""
    return {r["epoch"]: ((r.get("kitti") or {}).get("Car") or {}).get("AP40", {}).get("moderate")
            for r in run.evals}


def row(name: str, runs: list[RunRecord], base: list[RunRecord]) -> dict:
    """The row of one grid, as the runs scored themselves at the end of training."""
    curves = [car_curve(run) for run in runs]
    epochs = sorted({e for c in curves for e in c})
    return summarise(name, choices(runs, base), [run.seed for run in runs], {run.name: run_metrics(run) for run in runs},
                     {e: statistics.fmean(c[e] for c in curves if c.get(e) is not None) for e in epochs},
                     statistics.fmean(run.summary.get("train_seconds", 0.0) for run in runs))


def summarise(name: str, choice: str, seeds: list, per_run: dict, curve: dict, seconds: float | None) -> dict:
    """A table row: the per-run metrics, their means, and the 95% bootstrap interval of the mean Car AP40 Moderate."""
    mean = {c: statistics.fmean(m[c] for m in per_run.values() if m.get(c) is not None)
            if any(m.get(c) is not None for m in per_run.values()) else None for c in COLUMNS}
    car = [m["kitti_Car_AP40_moderate"] for m in per_run.values() if m.get("kitti_Car_AP40_moderate") is not None]
    ci = bootstrap_ci(car, seed=REPORT_SEED, n_resamples=REPORT_RESAMPLES) if len(car) > 1 else (None, None)
    return {"name": name, "choices": choice, "seeds": seeds, "mean": mean, "car_moderate_ci95": ci,
            "per_run": per_run, "car_curve": curve, "seconds": seconds}


def flatten(metrics: dict) -> dict[str, float | None]:
    """An evaluation's metrics dict (evaluation/metrics.py) -> the COLUMNS keys."""
    flat = {"coco_mAP50": metrics["coco"]["mAP50"]}
    for cls in ("Car", "Pedestrian", "Cyclist"):
        for level, value in (metrics["kitti"].get(cls) or {}).get("AP40", {}).items():
            flat[f"kitti_{cls}_AP40_{level}"] = value
    return flat


def rescored_row(name: str, runs: list[RunRecord], size: tuple[int, int]) -> dict:
    """Every run's last.pt scored again on its val split at input ``size`` (W, H): the same row as ``row``."""
    per_run = {}
    for run in runs:
        model = inference.load(str(run.path / "last.pt"), device="cpu")
        data = KittiDataset(model.data, model.split, classes=model.classes)
        frames = predict(model.model, data, dataclasses.replace(model.settings, size=size), model.device)
        per_run[run.name] = flatten(evaluate_frames(data.labels, [frames[i] for i in range(len(data))],
                                                    list(model.classes)))
    return summarise(f"{name} @ {size[0]}x{size[1]}", f"evaluated at {size[0]}x{size[1]}",
                     [run.seed for run in runs], per_run, {}, None)


def zero_shot_row(spec: str) -> dict:
    """A fixed model's row from an eval.py metrics JSON, ``NAME=PATH``."""
    name, _, path = spec.partition("=")
    if not path:
        raise SystemExit(f"error: --zero-shot {spec}: expected NAME=METRICS.json")
    flat = flatten(json.loads(Path(path).read_text()))
    return summarise(f"zero-shot {name}", "COCO model, --class-map coco-kitti", [], {"zero-shot": flat}, {}, None)


def markdown(rows: list[dict]) -> str:
    lines = ["| row | choice | runs | Car AP40 E / M / H | Car M 95% CI | Ped. M | Cyc. M | COCO mAP@0.5 | "
             "Car M per run | Car M by epoch | s/run |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        m = r["mean"]
        car = " / ".join(fmt(m[c], 2) for c in COLUMNS[:3])
        seeds = ", ".join(fmt(v.get("kitti_Car_AP40_moderate"), 2) for v in r["per_run"].values()) or "-"
        curve = ", ".join(f"{e}: {fmt(v, 1)}" for e, v in r["car_curve"].items()) or "-"
        low, high = r["car_moderate_ci95"]
        interval = f"{fmt(low, 2)} to {fmt(high, 2)}" if low is not None else "-"
        lines.append(f"| {r['name']} | {r['choices']} | {len(r['seeds']) or '-'} | {car} | {interval} | "
                     f"{fmt(m[COLUMNS[3]], 2)} | {fmt(m[COLUMNS[4]], 2)} | {fmt(m[COLUMNS[5]], 2)} | {seeds} | "
                     f"{curve} | {fmt(r['seconds'], 0)} |")
    return "\n".join(lines)


def main(args: argparse.Namespace) -> list[dict]:
    base = group_runs(args.groups[0])
    groups = [(g.name, base if i == 0 else group_runs(g)) for i, g in enumerate(args.groups)]
    rows = [row(name, runs, base) for name, runs in groups]
    rows += [rescored_row(name, runs, size) for size in args.eval_size for name, runs in groups]
    rows += [zero_shot_row(spec) for spec in args.zero_shot]
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str))
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())

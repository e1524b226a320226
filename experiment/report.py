"""The comparison report of repeated runs: report.json, report.md and the reference post's two figures."""
from __future__ import annotations

from pathlib import Path

from experiment import figures
from experiment.comparison import RunRecord, compare
from utils.io import write_json, write_text

HEADLINE_METRICS = ("coco_mAP50", "coco_mAP", "kitti_Car_AP40_moderate", "kitti_Pedestrian_AP40_moderate",
                    "kitti_Cyclist_AP40_moderate")


def write_report(out_dir: str | Path, runs: list[RunRecord]) -> dict:
    """Compare ``runs`` and write report.json, report.md, loss_curves.png, loss_diff.png and map_runs.png."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = compare(runs)
    write_json(out / "report.json", result)
    figures.plot_loss_curves(runs, out / "loss_curves.png")
    figures.plot_loss_diff(runs, out / "loss_diff.png")
    figures.plot_run_metrics(result["metrics"], "coco_mAP50", out / "map_runs.png")
    write_text(out / "report.md", render_markdown(result))
    return result


def fmt(value, digits: int = 3, sign: str = "") -> str:
    """A number of the reports' tables with ``digits`` decimals (``sign="+"``: always signed); None -> "n/a"."""
    return "n/a" if value is None else f"{value:{sign}.{digits}f}"


def render_markdown(result: dict) -> str:
    """The human-readable report: verdict, per-pair divergence, per-run metrics, spread tables."""
    verdict = {True: "**bitwise identical**", False: "**NOT bitwise identical**", None: "(a single run per seed)"}
    lines = ["# Run comparison", "",
             f"Runs: {len(result['runs'])}. Within each seed: {verdict[result['bitwise_identical']]}.", ""]
    lines += ["| run A | run B | weights identical | losses identical | first divergent step | max abs. loss diff |",
              "|---|---|---|---|---|---|"]
    for p in result["pairs"]:
        lines.append(f"| {p['a']} | {p['b']} | {p['weights_identical']} | {p['losses_identical']} | "
                     f"{p['first_divergent_step'] or 'none'} | {p['max_abs_loss_diff']:.3g} |")
    lines += ["", "## Final metrics per run (percent)", "",
              "| run | seed | weights_sha256 | " + " | ".join(HEADLINE_METRICS) + " |",
              "|---|---|---|" + "---|" * len(HEADLINE_METRICS)]
    for run in result["runs"]:
        m = result["metrics"][run["name"]]
        lines.append(f"| {run['name']} | {run['seed']} | `{run['weights_sha256'][:16]}` | "
                     + " | ".join(fmt(m.get(k), 2) for k in HEADLINE_METRICS) + " |")
    lines += ["", "## Spread", "", "| metric | within-seed std (max over seeds) | within-seed range | "
              "across-seed std | across-seed range |", "|---|---|---|---|---|"]
    for name in HEADLINE_METRICS:
        within = result["within_seed"].get(name)
        if within is None:
            continue
        ranges = [s["range"] for s in within["per_seed"].values() if s["range"] is not None]
        across = (result["across_seeds"] or {}).get(name) or {}
        lines.append(f"| {name} | {fmt(within['max_std'])} | {fmt(max(ranges) if ranges else None)} | "
                     f"{fmt(across.get('std'))} | {fmt(across.get('range'))} |")
    lines += ["", "Figures: `loss_curves.png` (total loss per step, all runs), `loss_diff.png` (difference from the "
              "first run of the same seed), `map_runs.png` (COCO mAP@0.5 per run).", ""]
    return "\n".join(lines)

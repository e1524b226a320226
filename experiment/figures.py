"""The run comparison's figures: the reference post's two (loss curves of repeated runs, their difference) and the
final metric per run."""
from __future__ import annotations

from pathlib import Path

from utils.figures import new_figure, save_figure


def plot_loss_curves(runs, out_path: str | Path) -> None:
    """The reference post's first figure: total loss per step of every run, overlaid."""
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    for run in runs:
        ax.plot([r["step"] for r in run.train], [r["total"] for r in run.train], lw=0.9, label=run.name)
    ax.set(xlabel="optimizer step", ylabel="total loss", yscale="log", title="loss curves of repeated runs")
    ax.legend(fontsize=7)
    save_figure(fig, out_path)


def plot_loss_diff(runs, out_path: str | Path) -> None:
    """The reference post's second figure: per-step loss difference from the first run of the same seed."""
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    first = {}
    for run in runs:
        ref = first.setdefault(run.seed, run)
        if ref is run:
            continue
        n = min(len(ref.train), len(run.train))
        ax.plot([r["step"] for r in run.train[:n]],
                [b["total"] - a["total"] for a, b in zip(ref.train[:n], run.train[:n])], lw=0.9,
                label=f"{run.name} - {ref.name}")
    ax.axhline(0.0, color="black", lw=0.5)
    ax.set(xlabel="optimizer step", ylabel="loss difference", title="difference from the first run (same seed)")
    if ax.lines[1:]:
        ax.legend(fontsize=7)
    save_figure(fig, out_path)


def plot_run_metrics(metrics: dict, key: str, out_path: str | Path) -> None:
    """A bar per run of one final metric (e.g. coco_mAP50), in percent."""
    fig = new_figure(max(4, 0.8 * len(metrics) + 2), 3.5)
    ax = fig.add_subplot()
    names = list(metrics)
    values = [metrics[n].get(key) or 0.0 for n in names]
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel=f"{key} (%)", title=f"{key} per run")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    save_figure(fig, out_path)

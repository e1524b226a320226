"""The run comparison's figures: the reference post's two (loss curves of repeated runs, their difference), the
final metric per run, per source of randomness (--vary) and per group of an A/B comparison."""
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


def _points(ax, x: float, values: list[float], **style) -> None:
    """``values`` as points around column ``x``, spread sideways so that equal values stay countable."""
    width = 0.3 if len(values) > 1 else 0.0
    offsets = [width * (i / max(len(values) - 1, 1) - 0.5) for i in range(len(values))]
    ax.scatter([x + o for o in offsets], values, s=22, zorder=3, **style)


def plot_variance_by_source(values: dict[str, list[float | None]], key: str, out_path: str | Path) -> None:
    """One column per source of randomness: the final ``key`` (percent) of each of its runs as points, a horizontal
    line at their mean. A run without the metric (None) is left out."""
    fig = new_figure(max(4, 1.2 * len(values) + 2), 3.5)
    ax = fig.add_subplot()
    for i, vals in enumerate(values.values()):
        vals = [v for v in vals if v is not None]
        if vals:
            _points(ax, i, vals, color="tab:blue")
            ax.hlines(sum(vals) / len(vals), i - 0.3, i + 0.3, color="black", lw=1.2)
    ax.set_xticks(range(len(values)), list(values))
    ax.set_xlim(-0.6, len(values) - 0.4)
    ax.set(xlabel="varied source of randomness", ylabel=f"{key} (%)", title=f"{key} per run, by source")
    save_figure(fig, out_path)


def plot_ab_runs(baseline: list[float | None], candidate: list[float | None], paired: bool, key: str,
                 out_path: str | Path) -> None:
    """The final ``key`` (percent) of every baseline (A) and candidate (B) run; with ``paired``, entry i of both
    groups share their seeds and are joined by a line. A run without the metric (None) is left out."""
    fig = new_figure(4.5, 3.5)
    ax = fig.add_subplot()
    if paired:
        for a, b in zip(baseline, candidate, strict=True):
            if a is not None and b is not None:
                ax.plot([0, 1], [a, b], color="gray", lw=0.8, zorder=2)
        for x, values, color in ((0, baseline, "tab:blue"), (1, candidate, "tab:orange")):
            present = [v for v in values if v is not None]
            ax.scatter([x] * len(present), present, color=color, s=22, zorder=3)
    else:
        _points(ax, 0, [v for v in baseline if v is not None], color="tab:blue")
        _points(ax, 1, [v for v in candidate if v is not None], color="tab:orange")
    ax.set_xticks([0, 1], ["A (baseline)", "B (candidate)"])
    ax.set_xlim(-0.6, 1.6)
    ax.set(ylabel=f"{key} (%)", title=f"{key} per run" + (" (paired by seeds)" if paired else ""))
    save_figure(fig, out_path)

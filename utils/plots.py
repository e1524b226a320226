"""Figures as PNG files, drawn with matplotlib's Agg renderer (no display, no pyplot global state)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

DIFFICULTY_STYLE = {"easy": "tab:green", "moderate": "tab:blue", "hard": "tab:red"}


def plot_pr_curves(curves: dict, out_path: str | Path) -> None:
    """KITTI precision-recall curves: one panel per class with its Easy/Moderate/Hard curves, one PNG.

    Args:
        curves: ``{cls: {difficulty: (41,) precision envelope or None}}`` (``utils.metrics.evaluate_frames`` with
            ``return_curves=True``); entry i is recall i/40. None: no counted GT, drawn as a note.
    """
    if not curves:
        raise ValueError("no classes to plot")
    fig = Figure(figsize=(4.0 * len(curves), 3.6), layout="constrained")
    recall = np.linspace(0.0, 1.0, 41)
    for ax, (cls, per_difficulty) in zip(fig.subplots(1, len(curves), squeeze=False)[0], curves.items()):
        for difficulty, precision in per_difficulty.items():
            if precision is None:
                continue
            ap40 = np.mean(precision[1:]) * 100
            ax.plot(recall, precision, color=DIFFICULTY_STYLE.get(difficulty), label=f"{difficulty} (AP40 {ap40:.1f})")
        if all(p is None for p in per_difficulty.values()):
            ax.text(0.5, 0.5, "no counted ground truth", ha="center", va="center", transform=ax.transAxes)
        else:
            ax.legend(loc="lower left", fontsize="small")
        ax.set(title=cls, xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    # No "Software" tag: the PNG bytes then do not change with the matplotlib version.
    fig.savefig(out_path, dpi=100, metadata={"Software": None})


def _save(fig: Figure, out_path: str | Path) -> None:
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


def plot_training_loss(records: list[dict], out_path: str | Path) -> None:
    """One run's loss terms per optimizer step (records: metrics.jsonl train lines)."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    steps = [r["step"] for r in records]
    for key in ("total", "box", "obj", "cls"):
        ax.plot(steps, [r[key] for r in records], label=key, lw=1.2 if key == "total" else 0.8)
    ax.set(xlabel="optimizer step", ylabel="loss", yscale="log", title="training loss")
    ax.legend()
    _save(fig, out_path)


def plot_loss_curves(runs, out_path: str | Path) -> None:
    """The reference post's first figure: total loss per step of every run, overlaid."""
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    for run in runs:
        ax.plot([r["step"] for r in run.train], [r["total"] for r in run.train], lw=0.9, label=run.name)
    ax.set(xlabel="optimizer step", ylabel="total loss", yscale="log", title="loss curves of repeated runs")
    ax.legend(fontsize=7)
    _save(fig, out_path)


def plot_loss_diff(runs, out_path: str | Path) -> None:
    """The reference post's second figure: per-step loss difference from the first run of the same seed."""
    fig = Figure(figsize=(8, 4))
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
    _save(fig, out_path)


def plot_run_metrics(metrics: dict, key: str, out_path: str | Path) -> None:
    """A bar per run of one final metric (e.g. coco_mAP50), in percent."""
    fig = Figure(figsize=(max(4, 0.8 * len(metrics) + 2), 3.5))
    ax = fig.add_subplot()
    names = list(metrics)
    values = [metrics[n].get(key) or 0.0 for n in names]
    ax.bar(range(len(names)), values, color="tab:blue")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=7)
    ax.set(ylabel=f"{key} (%)", title=f"{key} per run")
    for i, v in enumerate(values):
        ax.text(i, v, f"{v:.2f}", ha="center", va="bottom", fontsize=7)
    _save(fig, out_path)

"""The evaluation report shared by eval.py, training and the run comparison: KITTI AP + COCO mAP as one
JSON-ready dict, its text table, the headline number that picks best.pt, and the PR-curve figure.

Shape (AP in percent, 0-100)::

    {"kitti": {"Car": {"AP11": {"easy": x, "moderate": x, "hard": x}, "AP40": {...}}, "Pedestrian": ..., ...},
     "coco": {"mAP": x, "mAP50": x, "per_class": {"Car": x, ...}}}

``null`` (None) marks a value that cannot be computed: a class/difficulty without counted ground truth, or (KITTI
only, rare) a 0/0 precision that the devkit itself would print as nan (see evaluation/kitti_ap.py).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from data.kitti_labels import FrameLabels
from evaluation.coco_map import coco_map
from evaluation.kitti_ap import DIFFICULTIES, OFFICIAL_CLASSES, kitti_ap
from utils.figures import new_figure, save_figure

HEADLINE_CLASSES = ("Car", "Pedestrian", "Cyclist")
HEADLINE_NAME = "KITTI AP40 Moderate (mean of Car/Pedestrian/Cyclist)"
DIFFICULTY_STYLE = {"easy": "tab:green", "moderate": "tab:blue", "hard": "tab:red"}


def evaluate_frames(gt: list[FrameLabels], dt: list[FrameLabels], classes, return_curves: bool = False):
    """Score detections ``dt`` against labels ``gt`` (same frame order, frame pixels).

    Args:
        classes: the model's class list: COCO categories; KITTI AP for those among Car, Pedestrian, Cyclist.
    Returns:
        The metrics dict above; with ``return_curves`` also ``{cls: {difficulty: (41,) precision or None}}``
        for ``plot_pr_curves``.
    """
    official = {c.lower() for c in OFFICIAL_CLASSES}
    kitti, curves = kitti_ap(gt, dt, [c for c in classes if c.lower() in official], return_curves=True)
    metrics = _nan_to_none({"kitti": kitti, "coco": coco_map(gt, dt, classes)})
    if not return_curves:
        return metrics
    return metrics, {c: {d: (curve.precision if curve.n_gt else None) for d, curve in per.items()}
                     for c, per in curves.items()}


def _nan_to_none(obj):
    """JSON has no NaN: nested dict/float values that are NaN become None."""
    if isinstance(obj, dict):
        return {k: _nan_to_none(v) for k, v in obj.items()}
    return None if isinstance(obj, float) and math.isnan(obj) else obj


def format_metrics(metrics: dict) -> str:
    """The metrics dict -> a fixed-width text table (KITTI AP|R40 and AP|R11 per difficulty, then COCO)."""
    head = " ".join(f"{d:>8}" for d in DIFFICULTIES)
    lines = [f"{'KITTI 2D AP (%)':<16}{'AP|R40':^26}   {'AP|R11':^26}", f"{'class':<16}{head}   {head}"]
    for cls, ap in metrics["kitti"].items():
        r40 = " ".join(_fmt(ap["AP40"][d]) for d in DIFFICULTIES)
        r11 = " ".join(_fmt(ap["AP11"][d]) for d in DIFFICULTIES)
        lines.append(f"{cls:<16}{r40}   {r11}")
    coco = metrics["coco"]
    lines += ["", f"COCO mAP@[.5:.95] {_fmt(coco['mAP']).strip()}   mAP@.5 {_fmt(coco['mAP50']).strip()}",
              "COCO AP@[.5:.95] per class: "
              + ", ".join(f"{c} {_fmt(v).strip()}" for c, v in coco["per_class"].items())]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return f"{'n/a':>8}" if value is None else f"{value:8.2f}"


def headline(metrics: dict) -> float:
    """KITTI AP40 Moderate, mean over Car/Pedestrian/Cyclist (evaluable ones); COCO mAP@0.5 if none is.

    The metric best.pt is chosen by, in percent.
    """
    values = [metrics["kitti"][c]["AP40"]["moderate"] for c in HEADLINE_CLASSES
              if c in metrics["kitti"] and metrics["kitti"][c]["AP40"]["moderate"] is not None]
    return float(np.mean(values)) if values else float(metrics["coco"]["mAP50"] or 0.0)


def plot_pr_curves(curves: dict, out_path: str | Path) -> None:
    """KITTI precision-recall curves: one panel per class with its Easy/Moderate/Hard curves, one PNG.

    Args:
        curves: ``{cls: {difficulty: (41,) precision envelope or None}}`` (``evaluate_frames`` with
            ``return_curves=True``); entry i is recall i/40. None: no counted GT, drawn as a note.
    """
    if not curves:
        raise ValueError("no classes to plot")
    fig = new_figure(4.0 * len(curves), 3.6, constrained=True)
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
    save_figure(fig, out_path, dpi=100)

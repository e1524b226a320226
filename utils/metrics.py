"""The evaluation report shared by eval.py, training and the run comparison: KITTI AP + COCO mAP as one
JSON-ready dict, and its text table.

Shape (AP in percent, 0-100)::

    {"kitti": {"Car": {"AP11": {"easy": x, "moderate": x, "hard": x}, "AP40": {...}}, "Pedestrian": ..., ...},
     "coco": {"mAP": x, "mAP50": x, "per_class": {"Car": x, ...}}}

``null`` (None) marks a value that cannot be computed: a class/difficulty without counted ground truth, or (KITTI
only, rare) a 0/0 precision that the devkit itself would print as nan (see utils/kitti_eval.py).
"""
from __future__ import annotations

import math

from data.kitti_labels import FrameLabels
from utils.coco_eval import coco_map
from utils.kitti_eval import DIFFICULTIES, OFFICIAL_CLASSES, kitti_ap


def evaluate_frames(gt: list[FrameLabels], dt: list[FrameLabels], classes, return_curves: bool = False):
    """Score detections ``dt`` against labels ``gt`` (same frame order, frame pixels).

    Args:
        classes: the model's class list: COCO categories; KITTI AP for those among Car, Pedestrian, Cyclist.
    Returns:
        The metrics dict above; with ``return_curves`` also ``{cls: {difficulty: (41,) precision or None}}``
        for ``utils.plots.plot_pr_curves``.
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

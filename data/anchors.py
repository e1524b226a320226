"""Seeded k-means anchors from KITTI labels, with the IoU distance YOLOv2/v3 used to choose theirs.

Boxes are compared by shape only: both placed at the origin, distance = 1 - IoU, so a large box is not "far" from
an anchor just because its size in pixels is large. Box sizes are first mapped to the network input by the
letterbox scale of their own frame (KITTI frame sizes vary), so the anchors are in input pixels, as cfgs want.

    python -m data.anchors --data /path/to/kitti --split train --width 1248 --height 384   # a KITTI root's split
    python -m data.anchors --labels KITTI/training/label_2 --num 9 --width 1248 --height 384 --seed 0

prints a darknet ``anchors = ...`` line and the mean best IoU of the labels with those anchors. With ``--data`` only
the frames of ``--split`` count (anchors chosen on the training frames, never on the ones they are evaluated on).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from data.kitti import IMAGE_DIR, LABEL_DIR, image_size, read_split
from data.kitti_labels import KITTI_CLASSES, read_label_file
from utils.boxes import wh_iou
from utils.errors import UserError, run_cli


def _init_plus_plus(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding: each next centre drawn with probability proportional to its squared distance."""
    centers = wh[[rng.integers(len(wh))]]
    for _ in range(1, k):
        distance = 1.0 - wh_iou(wh, centers).max(axis=1)
        weights = distance**2
        centers = np.concatenate([centers, wh[[rng.choice(len(wh), p=weights / weights.sum())]]])
    return centers


def kmeans_anchors(wh: np.ndarray, k: int, seed: int, max_iter: int = 1000) -> np.ndarray:
    """Cluster box shapes into ``k`` anchors with distance 1 - IoU.

    Args:
        wh: ``(N, 2)`` box widths and heights, positive, in input pixels.
        seed: seeds the k-means++ initialisation (a local Generator; the global RNG is never used).
    Returns:
        ``(k, 2)`` float64 anchors sorted by area (then width). Deterministic for a given (set of boxes, k, seed):
        boxes are sorted first, so their order in ``wh`` does not matter, and ties in the assignment go to the
        lowest-index centre.
    """
    wh = np.asarray(wh, dtype=np.float64)
    if wh.ndim != 2 or wh.shape[1] != 2 or not (wh > 0).all():
        raise UserError(f"wh must be (N, 2) positive widths and heights, got shape {wh.shape}")
    distinct = len(np.unique(wh, axis=0))
    if distinct < k:
        raise UserError(f"{distinct} distinct box shapes cannot make {k} anchors")
    wh = wh[np.lexsort((wh[:, 1], wh[:, 0]))]
    centers = _init_plus_plus(wh, k, np.random.default_rng(seed))
    for _ in range(max_iter):
        assign = wh_iou(wh, centers).argmax(axis=1)  # argmax returns the first maximum: deterministic ties
        # An emptied cluster keeps its centre rather than being re-drawn, so no extra randomness enters.
        updated = np.array([wh[assign == j].mean(axis=0) if (assign == j).any() else centers[j] for j in range(k)])
        if np.array_equal(updated, centers):
            break
        centers = updated
    return centers[np.lexsort((centers[:, 0], centers[:, 0] * centers[:, 1]))]


def mean_best_iou(wh: np.ndarray, anchors: np.ndarray) -> float:
    """Mean over boxes ``(N, 2)`` of the IoU with their best anchor ``(K, 2)``; the usual anchor-quality score."""
    return float(wh_iou(np.asarray(wh, np.float64), np.asarray(anchors, np.float64)).max(axis=1).mean())


def letterbox_scale(frame_size: tuple[int, int], input_size: tuple[int, int]) -> float:
    """Scale that fits a (width, height) frame inside a (width, height) input keeping its aspect ratio."""
    return min(input_size[0] / frame_size[0], input_size[1] / frame_size[1])


def read_box_sizes(label_dir: Path, image_dir: Path, input_size: tuple[int, int],
                   classes: tuple[str, ...], ids: list[str] | None = None) -> np.ndarray:
    """Widths and heights ``(N, 2)`` in input pixels of every ``classes`` box in ``label_dir/*.txt`` (only the
    frames ``ids`` when given).

    Each frame's size comes from ``image_dir/<id>.png``; DontCare regions are never included.
    """
    label_files = sorted(label_dir.glob("*.txt")) if ids is None else [label_dir / f"{i}.txt" for i in ids]
    if not label_files:
        raise UserError(f"{label_dir}: no label files (*.txt)")
    sizes = []
    for label_file in label_files:
        labels = read_label_file(label_file)
        keep = np.array([name in classes for name in labels.names], dtype=bool)
        if not keep.any():
            continue
        boxes = labels.boxes[keep]
        scale = letterbox_scale(image_size(image_dir / f"{label_file.stem}.png"), input_size)
        sizes.append((boxes[:, 2:4] - boxes[:, 0:2]) * scale)
    if not sizes:
        raise UserError(f"{label_dir}: no boxes of classes {', '.join(classes)}")
    return np.concatenate(sizes)


def format_anchors(anchors: np.ndarray) -> str:
    """Darknet cfg line with anchors rounded to whole input pixels (at least 1)."""
    pairs = np.maximum(np.rint(anchors), 1).astype(int)
    return "anchors = " + ",  ".join(f"{w},{h}" for w, h in pairs)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Seeded k-means (1 - IoU) anchors from KITTI label files.")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="KITTI root (training/label_2, training/image_2, ImageSets)")
    source.add_argument("--labels", type=Path, help="folder of KITTI label_2 *.txt files (every file counts)")
    parser.add_argument("--split", default="train", help="with --data: split name or id list (default: train)")
    parser.add_argument("--images", type=Path, help="folder of the frames' PNGs (default: LABELS/../image_2)")
    parser.add_argument("--num", type=int, default=9, help="number of anchors")
    parser.add_argument("--width", type=int, default=1248, help="network input width")
    parser.add_argument("--height", type=int, default=384, help="network input height")
    parser.add_argument("--seed", type=int, default=0, help="seed of the k-means++ initialisation")
    parser.add_argument("--classes", default=",".join(KITTI_CLASSES), help="comma-separated classes to use")
    return parser


def main(args: argparse.Namespace) -> str:
    """Compute, print and return the anchors line."""
    classes = tuple(args.classes.split(","))
    unknown = sorted(set(classes) - set(KITTI_CLASSES))
    if unknown:
        raise UserError(f"unknown classes {unknown} (expected some of {', '.join(KITTI_CLASSES)})")
    if args.data is not None:
        labels, image_dir, ids = args.data / LABEL_DIR, args.data / IMAGE_DIR, read_split(args.data, args.split)
    else:
        labels, ids = args.labels, None
        image_dir = args.images if args.images is not None else args.labels.parent / "image_2"
    wh = read_box_sizes(labels, image_dir, (args.width, args.height), classes, ids)
    anchors = kmeans_anchors(wh, args.num, args.seed)
    line = format_anchors(anchors)
    rounded = np.maximum(np.rint(anchors), 1)
    print(line)
    print(f"# {len(wh)} boxes, k={args.num}, seed={args.seed}, input {args.width}x{args.height}: "
          f"mean best IoU {mean_best_iou(wh, rounded):.4f}")
    return line


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "data.anchors"))

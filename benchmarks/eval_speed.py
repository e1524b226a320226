"""KITTI 2D AP speed on a val-sized synthetic set, one CPU thread.

    python benchmarks/eval_speed.py                       # 3769 frames, ~8 GT objects and ~30 detections each
    python benchmarks/eval_speed.py --frames 500 --repeats 5

Labels and detections are generated in memory from a seeded numpy Generator (realistic class mix and heights,
occlusion, truncation, DontCare; detections = noisy copies of GT plus false positives, some tiny). Times
``evaluation.kitti_ap.kitti_ap`` (Car, Pedestrian, Cyclist x Easy, Moderate, Hard) and prints each repeat; the target
is <= 5 s per evaluation.
"""
from __future__ import annotations

import os

# Thread counts are read when numpy/BLAS load, so they are pinned before the imports below.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.kitti_labels import FrameLabels, detections_frame  # noqa: E402
from evaluation.kitti_ap import kitti_ap  # noqa: E402

# Rough KITTI training-set class frequencies (instance counts reported for the 7481 labelled frames) and a
# detector's output class mix.
GT_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
GT_FREQ = np.array([28742, 2914, 1094, 4487, 222, 1627, 511, 973], dtype=np.float64)
DET_CLASSES = ("Car", "Pedestrian", "Cyclist")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--frames", type=int, default=3769, help="frames (3DOP val has 3769)")
    parser.add_argument("--gt-per-frame", type=float, default=8.0, help="mean GT objects per frame")
    parser.add_argument("--dets-per-frame", type=int, default=30, help="detections per frame")
    parser.add_argument("--repeats", type=int, default=3, help="timed evaluations")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def synthetic_frame(rng: np.random.Generator, gt_mean: float, n_dets: int) -> tuple[FrameLabels, FrameLabels]:
    """One frame of ground truth and detections, 1242x375 pixels."""
    k = int(rng.poisson(gt_mean))
    names = tuple(rng.choice(GT_CLASSES, k, p=GT_FREQ / GT_FREQ.sum()))
    h = np.exp(rng.uniform(np.log(15), np.log(200), k))  # log-uniform 15-200 px, as distance spreads heights
    w = h * np.where(np.isin(names, ("Pedestrian", "Person_sitting", "Cyclist")), 0.45, 1.6) * rng.uniform(0.8, 1.25, k)
    x1, y1 = rng.uniform(0, 1242 - w), rng.uniform(140, 375 - h).clip(0)
    boxes = np.stack([x1, y1, x1 + w, np.minimum(y1 + h, 375)], 1)
    dc = rng.uniform([0, 150, 0, 0], [1150, 220, 1, 1], (int(rng.integers(0, 4)), 4))
    dc[:, 2:] = dc[:, :2] + rng.uniform(20, 90, (len(dc), 2))
    gt = FrameLabels(names=names, truncated=rng.choice([0.0, 0.0, 0.0, 0.2, 0.4, 0.8], k),
                     occluded=rng.choice([0, 0, 1, 2, 3], k).astype(np.int64), alpha=np.zeros(k), boxes=boxes,
                     dimensions=np.ones((k, 3)), location=np.ones((k, 3)), rotation_y=np.zeros(k), scores=None,
                     dontcare=dc, lines=np.arange(1, k + 1))
    src = rng.integers(0, max(k, 1), n_dets)
    copies = (rng.random(n_dets) < 0.5) & (k > 0)  # half the detections are noisy copies of a GT object
    size = (boxes[src, 2:] - boxes[src, :2]) if k else np.ones((n_dets, 2))
    noisy = boxes[src] + rng.normal(0, 0.08, (n_dets, 4)) * np.concatenate([size, size], 1) if k else None
    xy = rng.uniform([0, 120], [1200, 330], (n_dets, 2))
    rand = np.concatenate([xy, xy + rng.uniform([5, 5], [150, 120], (n_dets, 2))], 1)
    det_boxes = np.where(copies[:, None], noisy, rand) if k else rand
    det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 1)
    det_names = [names[s] if c and names[s] in DET_CLASSES else DET_CLASSES[rng.integers(3)]
                 for s, c in zip(src, copies)]
    return gt, detections_frame(det_names, det_boxes, rng.random(n_dets))


def main(args) -> None:
    rng = np.random.default_rng(args.seed)
    frames = [synthetic_frame(rng, args.gt_per_frame, args.dets_per_frame) for _ in range(args.frames)]
    gt, dt = [g for g, _ in frames], [d for _, d in frames]
    print(f"{len(gt)} frames, {sum(map(len, gt))} GT objects, {sum(map(len, dt))} detections, numpy {np.__version__}")
    for i in range(args.repeats):
        start = time.perf_counter()
        ap = kitti_ap(gt, dt)
        print(f"repeat {i}: kitti_ap {time.perf_counter() - start:.3f} s")
    print("Car AP40 moderate (sanity):", round(ap["Car"]["AP40"]["moderate"], 2))


if __name__ == "__main__":
    main(get_args_parser().parse_args())

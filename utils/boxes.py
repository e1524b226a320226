"""Box math torchvision.ops lacks: clipping of numpy boxes, IoU within each batch entry, the IoU of box shapes,
and the KITTI devkit's overlaps. Format conversion and pairwise IoU are torchvision's (``torchvision.ops``, whose
format names this repo uses). Boxes are ``(x1, y1, x2, y2)`` (xyxy) in pixels with x1 < x2 and y1 < y2, continuous
coordinates with no +1 (KITTI's and torchvision's convention), unless a function says otherwise. Torch functions
serve the model and the loss; the float64 numpy ones serve data and evaluation.

Box math that belongs to one format stays with it: letterbox and flip mappings in data/transforms.py, the YOLO box
parametrisation (sigmoid offsets, log sizes) in models/head.py and models/loss.py.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def box_iou_batched(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """IoU within each batch entry: ``Tensor[B, N, 4]``, ``Tensor[B, M, 4]`` xyxy -> ``Tensor[B, N, M]`` in [0, 1].

    Degenerate boxes (zero area, e.g. padding) have IoU 0 with everything.
    """
    lt = torch.maximum(boxes1[:, :, None, :2], boxes2[:, None, :, :2])
    rb = torch.minimum(boxes1[:, :, None, 2:], boxes2[:, None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area1 = (boxes1[..., 2:] - boxes1[..., :2]).clamp(min=0).prod(-1)
    area2 = (boxes2[..., 2:] - boxes2[..., :2]).clamp(min=0).prod(-1)
    union = area1[:, :, None] + area2[:, None, :] - inter
    return inter / union.clamp(min=torch.finfo(inter.dtype).tiny)


def wh_iou(wh1, wh2):
    """IoU of boxes that share a corner: ``[N, 2]``, ``[M, 2]`` (width, height) -> ``[N, M]`` in [0, 1].

    Torch tensors or numpy arrays (the same arithmetic, in the same order, for both). Used to match box shapes to
    anchors, where position does not matter.
    """
    xp = torch if isinstance(wh1, Tensor) else np
    inter = xp.minimum(wh1[:, None], wh2[None]).prod(-1)
    return inter / (wh1.prod(-1)[:, None] + wh2.prod(-1)[None] - inter)


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Clip ``float[N, 4]`` xyxy boxes to [0, width] x [0, height] -> ``float64[N, 4]``."""
    return np.clip(np.asarray(boxes, np.float64).reshape(-1, 4), 0, [width, height, width, height])


def np_box_overlap(boxes1: np.ndarray, boxes2: np.ndarray, denominator: str = "union") -> np.ndarray:
    """Pairwise overlap of ``float64[N, 4]`` and ``float64[M, 4]`` xyxy -> ``float64[N, M]``, as the KITTI devkit
    computes it (continuous, no +1): intersection over the union, or over the area of ``boxes1`` with
    ``denominator="first"`` (the devkit's DontCare test, criterion 0).
    """
    boxes1 = np.asarray(boxes1, np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, np.float64).reshape(-1, 4)
    iw = np.minimum(boxes1[:, None, 2], boxes2[None, :, 2]) - np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
    ih = np.minimum(boxes1[:, None, 3], boxes2[None, :, 3]) - np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    if denominator == "first":
        return inter / area1[:, None]
    if denominator != "union":
        raise ValueError(f"denominator must be 'union' or 'first', got {denominator!r}")
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return inter / (area1[:, None] + area2[None, :] - inter)


def np_box_overlap_paired(boxes1: np.ndarray, boxes2: np.ndarray, denominator: str = "union") -> np.ndarray:
    """Overlap of corresponding rows of ``float64[P, 4]`` and ``float64[P, 4]`` xyxy -> ``float64[P]``: the same
    arithmetic as :func:`np_box_overlap` (bit-identical to its entries), for (GT, detection) pairs of many frames.
    """
    boxes1 = np.asarray(boxes1, np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, np.float64).reshape(-1, 4)
    iw = np.minimum(boxes1[:, 2], boxes2[:, 2]) - np.maximum(boxes1[:, 0], boxes2[:, 0])
    ih = np.minimum(boxes1[:, 3], boxes2[:, 3]) - np.maximum(boxes1[:, 1], boxes2[:, 1])
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    if denominator == "first":
        return inter / area1
    if denominator != "union":
        raise ValueError(f"denominator must be 'union' or 'first', got {denominator!r}")
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    return inter / (area1 + area2 - inter)

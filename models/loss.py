"""The YOLOv3 loss, outside the model: target assignment and a dict of named loss terms.

Boxes come in as xyxy input pixels (``Batch.targets``). Choices, after the YOLOv3 paper and darknet:

- Assignment: each ground truth goes to the one anchor, among all anchors of all heads, whose shape best matches
  it by IoU (boxes aligned at a corner), at the grid cell holding its centre. Ties between anchors go to the
  lowest anchor index.
- Duplicates: two ground truths on the same (image, head, anchor, cell) keep the one with the larger area
  (ties: the lower target row). The rule is explicit, so the result never depends on write order.
- Box (``box_loss="darknet"``, the default): the gradient on the raw outputs equals darknet's delta
  (``yolo_layer.c``, ``delta_yolo_box``) with the sign of a loss: ``scale * (sigmoid(tx) - t)`` on tx, ty (darknet
  applies no sigmoid derivative there) and ``scale * (tw - t)`` on tw, th, with ``scale = 2 - w*h`` (w, h relative
  to the input). As a loss: scale * (BCE(tx, t) - H(t) + (tw - t)^2 / 2), whose value is 0 at the target (the
  entropy H(t) is a constant: it changes the value, not the gradient). ``box_loss="sigmoid_l2"``, for an
  ablation only: squared error on (sigmoid(tx), sigmoid(ty)) and (tw, th), to measure what darknet's gradients
  change (benchmarks/stability.py). We keep the paper's regression rather than GIoU because this repo reproduces
  YOLOv3 as published; it also keeps the loss free of IoU gradients.
- Objectness: BCE. Positives target 1. A negative whose decoded box overlaps any ground truth of its image with
  IoU > the head's ignore_thresh is not penalised, nor is one whose cell centre lies inside an ignore region
  (a DontCare box or an object of an untrained class).
- Classes: multi-label BCE on positives (independent sigmoids).

Every term is summed over the batch and divided by the number of images, darknet's normalisation (darknet sums
the deltas of a batch and divides the learning rate by the batch size). The objectness and class terms are BCE on
logits, whose gradient ``sigmoid(x) - t`` is darknet's delta as well.

The objectness sum grows with the number of grid cells, so with darknet's normalisation (``obj_norm="sum"``) the
gradient, and with it the stable learning rate, depends on the input size. ``obj_norm="cells"`` divides it by the
input's area and multiplies by ``OBJ_REFERENCE_AREA`` (416x128, the embedded default's input): the same loss there,
a size-independent objectness elsewhere (the normalisation of later YOLO versions, which average it over cells).
benchmarks/stability.py measures both; benchmarks/README.md says why darknet's sum stays the default (at the same
lr, "cells" trained 10 points of mAP@0.5 worse at 832x256).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from models.head import decode_boxes, grid_offsets, split_head
from utils.boxes import box_iou_batched, wh_iou


@dataclass(frozen=True)
class Assignment:
    """Positive samples, one row per kept ground truth (after the duplicate rule); P rows.

    Attributes:
        head, image, anchor, gj, gi: (P,) int64 indices into head ``head``'s (N, A, H, W) grid.
        txy: (P, 2) cell-relative centre in [0, 1); twh: (P, 2) log size ratio to the anchor.
        cls: (P,) int64 class index; weight: (P,) box weight 2 - w*h.
    """

    head: Tensor
    image: Tensor
    anchor: Tensor
    gj: Tensor
    gi: Tensor
    txy: Tensor
    twh: Tensor
    cls: Tensor
    weight: Tensor


def _first_argmax(values: Tensor) -> Tensor:
    """Row-wise argmax of ``(M, K)`` that picks the lowest index on ties, whatever the backend does."""
    is_max = values >= values.max(dim=1, keepdim=True).values
    order = torch.arange(values.shape[1], 0, -1, device=values.device)
    return (is_max * order).argmax(dim=1)


def build_targets(targets: Tensor, heads, grids: list[tuple[int, int]], input_size: tuple[int, int]) -> Assignment:
    """Assign ground truths to (head, anchor, cell).

    Args:
        targets: (M, 6) [image, class, x1, y1, x2, y2] in input pixels.
        heads: per-head metadata (``anchors`` (A, 2) pixels, ``stride``), in output order.
        grids: (H, W) of every head output.
        input_size: (W, H) of the network input in pixels.
    """
    device = targets.device
    anchors = torch.cat([torch.as_tensor(h.anchors, dtype=torch.float32, device=device) for h in heads])
    head_of = torch.cat([torch.full((len(h.anchors),), i, device=device) for i, h in enumerate(heads)])
    local = torch.cat([torch.arange(len(h.anchors), device=device) for h in heads])
    # imported here: torchvision.ops pulls in torch._dynamo (2 s), which a CLI stopping on a user error never needs
    from torchvision.ops import box_convert
    cxcywh = box_convert(targets[:, 2:6].float(), "xyxy", "cxcywh")
    best = _first_argmax(wh_iou(cxcywh[:, 2:], anchors))
    head, anchor = head_of[best], local[best]
    strides = torch.tensor([h.stride for h in heads], dtype=torch.float32, device=device)[head]
    sizes = torch.tensor(grids, dtype=torch.long, device=device)[head]  # (M, 2) H, W
    cell = cxcywh[:, :2] / strides[:, None]
    gi = cell[:, 0].long().clamp(min=0).minimum(sizes[:, 1] - 1)
    gj = cell[:, 1].long().clamp(min=0).minimum(sizes[:, 0] - 1)
    keep = _keep_largest(targets[:, 0].long(), head, anchor, gj, gi, cxcywh[:, 2] * cxcywh[:, 3], sizes)
    rel = cxcywh[keep, 2:] / torch.tensor(input_size, dtype=torch.float32, device=device)
    return Assignment(
        head=head[keep], image=targets[keep, 0].long(), anchor=anchor[keep], gj=gj[keep], gi=gi[keep],
        txy=cell[keep] - torch.stack([gi[keep], gj[keep]], 1).float(),
        twh=torch.log(cxcywh[keep, 2:] / anchors[best[keep]]),
        cls=targets[keep, 1].long(), weight=2.0 - rel[:, 0] * rel[:, 1],
    )


def _keep_largest(image, head, anchor, gj, gi, area, sizes) -> Tensor:
    """Indices of the ground truths that survive the duplicate rule: per slot, the largest area, then lowest row."""
    if len(image) == 0:
        return torch.zeros(0, dtype=torch.long, device=image.device)
    width = int(sizes[:, 1].max()) + 1
    height = int(sizes[:, 0].max()) + 1
    slot = (((image * 16 + head) * 64 + anchor) * height + gj) * width + gi
    by_area = torch.argsort(-area, stable=True)  # larger first; stable keeps lower rows first on equal area
    order = by_area[torch.argsort(slot[by_area], stable=True)]
    first = torch.ones_like(order, dtype=torch.bool)
    first[1:] = slot[order[1:]] != slot[order[:-1]]
    return order[first].sort().values


BOX_LOSSES = ("darknet", "sigmoid_l2")
OBJ_NORMS = ("sum", "cells")
OBJ_REFERENCE_AREA = 416 * 128  # input pixels where obj_norm "cells" equals "sum"


def yolo_loss(outputs: list[Tensor], heads, targets: Tensor, ignore: Tensor,
              input_size: tuple[int, int], box_loss: str = "darknet", obj_norm: str = "sum") -> dict[str, Tensor]:
    """YOLOv3 loss over all heads.

    Args:
        outputs: raw head outputs, (N, A*(5+C), H, W) each.
        heads: per-head metadata (``anchors``, ``stride``, ``num_classes``, ``ignore_thresh``).
        targets: (M, 6) [image, class, x1, y1, x2, y2] in input pixels.
        ignore: (D, 5) [image, x1, y1, x2, y2] regions without background loss.
        input_size: (W, H) of the input in pixels.
        box_loss: "darknet" (darknet's gradients) or "sigmoid_l2" (see the module docstring).
        obj_norm: "sum" (darknet) or "cells" (objectness scaled by OBJ_REFERENCE_AREA / input area).
    Returns:
        {"box", "obj", "cls", "total"}: float32 scalars, each summed over the batch / number of images.
    """
    if box_loss not in BOX_LOSSES:
        raise ValueError(f"box_loss must be one of {BOX_LOSSES}, got {box_loss!r}")
    if obj_norm not in OBJ_NORMS:
        raise ValueError(f"obj_norm must be one of {OBJ_NORMS}, got {obj_norm!r}")
    n = outputs[0].shape[0]
    preds = [split_head(o, len(h.anchors)).float() for o, h in zip(outputs, heads)]  # (N, A, H, W, 5+C)
    assign = build_targets(targets, heads, [p.shape[2:4] for p in preds], input_size)
    zero = outputs[0].new_zeros((), dtype=torch.float32)
    box, obj, cls = zero, zero, zero
    for i, (pred, head) in enumerate(zip(preds, heads)):
        pos = assign.head == i
        idx = (assign.image[pos], assign.anchor[pos], assign.gj[pos], assign.gi[pos])
        tobj = torch.zeros_like(pred[..., 4])
        tobj[idx] = 1.0
        background = _background_mask(pred, head, targets, ignore) & (tobj == 0)
        obj_all = F.binary_cross_entropy_with_logits(pred[..., 4], tobj, reduction="none")
        obj = obj + (obj_all * ((tobj == 1) | background)).sum()
        if not pos.any():
            continue
        p = pred[idx]  # (P_i, 5+C)
        box = box + (assign.weight[pos] * _box_terms(p, assign.txy[pos], assign.twh[pos], box_loss)).sum()
        tcls = F.one_hot(assign.cls[pos], head.num_classes).float()
        cls = cls + F.binary_cross_entropy_with_logits(p[:, 5:], tcls, reduction="sum")
    if obj_norm == "cells":
        obj = obj * (OBJ_REFERENCE_AREA / (input_size[0] * input_size[1]))
    losses = {"box": box / n, "obj": obj / n, "cls": cls / n}  # darknet weights the three terms equally
    losses["total"] = losses["box"] + losses["obj"] + losses["cls"]
    return losses


def _box_terms(p: Tensor, txy: Tensor, twh: Tensor, kind: str) -> Tensor:
    """(P, 5+C) predictions at the positives, (P, 2) targets -> (P,) box loss before the 2 - w*h weight."""
    if kind == "sigmoid_l2":
        return (p[:, :2].sigmoid() - txy).square().sum(1) + (p[:, 2:4] - twh).square().sum(1)
    entropy = -(torch.special.xlogy(txy, txy) + torch.special.xlogy(1 - txy, 1 - txy))
    xy = F.binary_cross_entropy_with_logits(p[:, :2], txy, reduction="none") - entropy
    return xy.sum(1) + 0.5 * (p[:, 2:4] - twh).square().sum(1)


def _background_mask(pred: Tensor, head, targets: Tensor, ignore: Tensor) -> Tensor:
    """(N, A, H, W) True where a prediction counts as background (before removing positives)."""
    n, a, h, w, _ = pred.shape
    anchors = torch.as_tensor(head.anchors, dtype=torch.float32, device=pred.device)
    with torch.no_grad():
        boxes = decode_boxes(pred.detach(), anchors, head.stride)  # (N, A, H, W, 4)
        best = _best_gt_iou(boxes.view(n, -1, 4), targets)
        keep = (best <= head.ignore_thresh).view(n, a, h, w)
        return keep & ~_cells_in_regions(ignore, n, h, w, head.stride)[:, None]


def _pad_per_image(rows: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """(M, 1+K) rows [image, values...] -> (N, G, K) values padded per image and (N, G) validity, G = max count."""
    rows = rows[torch.argsort(rows[:, 0], stable=True)]
    image = rows[:, 0].long()
    counts = torch.bincount(image, minlength=n)
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(len(rows), device=rows.device) - starts[image]
    g = int(counts.max()) if len(rows) else 0
    padded = rows.new_zeros((n, g, rows.shape[1] - 1), dtype=torch.float32)
    valid = torch.zeros((n, g), dtype=torch.bool, device=rows.device)
    padded[image, slot] = rows[:, 1:].float()
    valid[image, slot] = True
    return padded, valid


def _best_gt_iou(boxes: Tensor, targets: Tensor) -> Tensor:
    """(N, K, 4) predicted boxes -> (N, K) best IoU with a ground truth of the same image (0 if none)."""
    n, k, _ = boxes.shape
    gt, _ = _pad_per_image(targets[:, [0, 2, 3, 4, 5]], n)  # (N, G, 4)
    if gt.shape[1] == 0:
        return boxes.new_zeros((n, k))
    iou = box_iou_batched(boxes, gt)  # (N, K, G); padding rows have zero area, so IoU 0
    return iou.amax(dim=2)


def _cells_in_regions(regions: Tensor, n: int, h: int, w: int, stride: int) -> Tensor:
    """(N, H, W) True for cells whose centre lies inside one of the image's ignore regions (D, 5)."""
    r, valid = _pad_per_image(regions, n)  # (N, G, 4)
    if r.shape[1] == 0:
        return torch.zeros((n, h, w), dtype=torch.bool, device=regions.device)
    gx, gy = grid_offsets(h, w, regions.device, torch.float32)
    cx = ((gx[0, 0] + 0.5) * stride)[None, None]  # (1, 1, H, W) cell centres in pixels
    cy = ((gy[0, 0] + 0.5) * stride)[None, None]
    x1, y1, x2, y2 = (r[..., i, None, None] for i in range(4))  # (N, G, 1, 1)
    hit = (cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2) & valid[..., None, None]
    return hit.any(dim=1)

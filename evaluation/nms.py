"""Postprocessing: decoded YOLO candidates -> per-image detections, with a fully deterministic order.

Candidates: score = objectness x class probability. YOLOv3's classes are independent sigmoids, so every (box, class)
pair above the threshold is its own candidate, with candidate index ``box_index * C + class`` (box-major).
Candidates are stable-sorted by (score descending, candidate index
ascending), per-class NMS keeps the earlier of two overlapping ones in that order, and the output keeps that order,
truncated to ``max_det``. No time limit: the result never depends on how fast the machine is.

Boxes stay in network-input pixels; undoing the letterbox is the caller's job (evaluation/predict.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from utils.errors import UserError


class NonFiniteOutput(UserError):
    """The model's outputs hold NaN or inf: its weights diverged."""


@dataclass(frozen=True)
class Detections:
    """Detections of one image, D of them, ordered by (score descending, candidate index ascending); CPU tensors.

    Attributes:
        boxes: (D, 4) float32 xyxy in network-input pixels.
        scores: (D,) float32 objectness x class probability, in (conf_thres, 1].
        classes: (D,) int64 class indices into the model's class list.
    """

    boxes: Tensor
    scores: Tensor
    classes: Tensor

    def __len__(self) -> int:
        return len(self.scores)


def postprocess(decoded: Tensor, conf_thres: float = 0.005, iou_thres: float = 0.45,
                max_det: int = 300) -> list[Detections]:
    """Threshold, NMS per class, and order the candidates of every image.

    Args:
        decoded: (N, K, 5+C) from ``models.head.decode``: xyxy input pixels, objectness probability, C class
            probabilities.
        conf_thres: keep candidates with score > conf_thres.
        iou_thres: suppress a candidate whose IoU with a kept earlier candidate of its class is > iou_thres.
        max_det: keep at most this many detections per image.
    Returns:
        N ``Detections`` on the CPU.
    """
    if decoded.dim() != 3 or decoded.shape[-1] < 6:
        raise ValueError(f"decoded must be (N, K, 5+C) with C >= 1, got shape {tuple(decoded.shape)}")
    if not torch.isfinite(decoded).all():
        raise NonFiniteOutput("the model's outputs contain NaN or inf (its weights diverged: train again with a lower "
                        "--lr); detections cannot be ranked")
    decoded = decoded.detach().float().cpu()
    return [_postprocess_image(image, conf_thres, iou_thres, max_det) for image in decoded]


def _candidates(image: Tensor, conf_thres: float) -> tuple[Tensor, Tensor, Tensor]:
    """(K, 5+C) -> candidate box indices, classes and scores, in candidate-index order."""
    num_classes = image.shape[1] - 5
    objectness = image[:, 4]
    # score <= objectness (class probabilities <= 1), so this pre-filter drops no candidate; it only saves work.
    rows = torch.nonzero(objectness > conf_thres).squeeze(1)
    scores = objectness[rows, None] * image[rows, 5:]  # (R, C)
    flat = torch.nonzero(scores.flatten() > conf_thres).squeeze(1)  # ascending = box-major candidate index
    box, cls = rows[flat // num_classes], flat % num_classes
    return box, cls, scores.flatten()[flat]


def _postprocess_image(image: Tensor, conf_thres: float, iou_thres: float, max_det: int) -> Detections:
    box, cls, score = _candidates(image, conf_thres)
    order = torch.sort(score, descending=True, stable=True).indices  # ties keep candidate-index order
    box, cls, score = box[order], cls[order], score[order]
    boxes = image[box, :4]
    # float64 and a shift to non-negative coordinates: batched_nms's per-class coordinate offset then neither loses
    # precision nor lets a negative box of one class reach into another class's range.
    boxes64 = boxes.double()
    shifted = boxes64 - boxes64.min() if len(boxes) else boxes64
    # NMS sees strictly decreasing rank scores, so torchvision's own tie handling never matters.
    rank = torch.arange(len(score), 0, -1, dtype=torch.float64)
    # imported here: torchvision.ops pulls in torch._dynamo (2 s), which a CLI stopping on a user error never needs
    from torchvision.ops import batched_nms
    keep = batched_nms(shifted, rank, cls, iou_thres)  # sorted by rank: our order
    keep = keep[:max_det]
    return Detections(boxes=boxes[keep].contiguous(), scores=score[keep].contiguous(),
                      classes=cls[keep].to(torch.int64).contiguous())

"""Decode raw YOLO head outputs into boxes. The model returns raw tensors; this module gives them meaning.

Layout of one raw head output, as YOLOv3 defines it: ``(N, A*(5+C), H, W)`` viewed as ``(N, A, 5+C, H, W)`` with
channels ``tx, ty, tw, th, objectness logit, C class logits``. A cell (gx, gy) of a head with stride s and anchor
(aw, ah) in input pixels predicts::

    cx = (sigmoid(tx) + gx) * s      cy = (sigmoid(ty) + gy) * s
    w  = aw * exp(tw)                h  = ah * exp(th)
"""
from __future__ import annotations

import torch
from torch import Tensor

# exp(tw) is clamped so an untrained head cannot produce inf boxes (and inf/NaN IoUs) in fp16/bf16 or fp32.
MAX_LOG_SCALE = 8.0


def split_head(raw: Tensor, num_anchors: int) -> Tensor:
    """``(N, A*(5+C), H, W)`` -> ``(N, A, H, W, 5+C)``, the layout the loss and decoder index into."""
    n, ch, h, w = raw.shape
    if ch % num_anchors:
        raise ValueError(f"head has {ch} channels, not a multiple of {num_anchors} anchors")
    return raw.view(n, num_anchors, ch // num_anchors, h, w).permute(0, 1, 3, 4, 2)


def grid_offsets(h: int, w: int, device, dtype) -> tuple[Tensor, Tensor]:
    """Cell column and row indices, each ``(1, 1, H, W)``."""
    gy, gx = torch.meshgrid(torch.arange(h, device=device, dtype=dtype),
                            torch.arange(w, device=device, dtype=dtype), indexing="ij")
    return gx[None, None], gy[None, None]


def decode_boxes(pred: Tensor, anchors: Tensor, stride: int) -> Tensor:
    """Box part of one head -> xyxy boxes in input pixels.

    Args:
        pred: ``(N, A, H, W, >=4)`` raw ``tx, ty, tw, th, ...``.
        anchors: ``(A, 2)`` anchor width and height in input pixels.
    Returns:
        ``(N, A, H, W, 4)`` xyxy in input pixels.
    """
    _, _, h, w, _ = pred.shape
    gx, gy = grid_offsets(h, w, pred.device, pred.dtype)
    cx = (pred[..., 0].sigmoid() + gx) * stride
    cy = (pred[..., 1].sigmoid() + gy) * stride
    aw = anchors[:, 0].view(1, -1, 1, 1).to(pred.dtype)
    ah = anchors[:, 1].view(1, -1, 1, 1).to(pred.dtype)
    bw = aw * pred[..., 2].clamp(max=MAX_LOG_SCALE).exp()
    bh = ah * pred[..., 3].clamp(max=MAX_LOG_SCALE).exp()
    return torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1)


def decode(outputs: list[Tensor], heads) -> Tensor:
    """All heads -> one tensor of candidate detections per image.

    Args:
        outputs: raw head outputs, ``(N, A_i*(5+C), H_i, W_i)`` each.
        heads: per-head metadata with ``anchors`` ((A_i, 2) pixels) and ``stride``, in the same order.
    Returns:
        ``(N, K, 5+C)`` float32: xyxy input pixels, objectness probability, class probabilities
        (sigmoid; YOLOv3 classes are independent, multi-label), K = sum of A_i*H_i*W_i in head order,
        then anchor, row, column order, so every candidate has a fixed index.
    """
    decoded = []
    for raw, head in zip(outputs, heads):
        anchors = torch.as_tensor(head.anchors, dtype=torch.float32, device=raw.device)
        pred = split_head(raw.float(), len(anchors))
        boxes = decode_boxes(pred, anchors, head.stride)
        scores = pred[..., 4:].sigmoid()
        decoded.append(torch.cat([boxes, scores], dim=-1).flatten(1, 3))
    return torch.cat(decoded, dim=1)

"""Model -> detections: batches through the model, decode, NMS, letterbox undone; one frame or a whole dataset.

Detections come back as result-file frames (``data.kitti_labels.FrameLabels`` with scores) in frame pixels, clipped
to the frame, so evaluation, result files and drawings all read the same thing.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from data.kitti_labels import FrameLabels, detections_frame
from data.loader import build_eval_loader
from data.transforms import Letterbox, letterbox, letterbox_darknet, unletterbox_boxes
from evaluation.class_map import map_scores
from evaluation.nms import Detections, postprocess
from models.build import to_input
from models.head import decode
from utils.boxes import clip_boxes


@dataclass(frozen=True)
class PredictSettings:
    """How a model is run for evaluation and detection (training.build makes one from the run config)."""

    size: tuple[int, int]  # network input (W, H), multiples of 32
    batch_size: int = 8
    workers: int = 0
    conf_thres: float = 0.005  # minimum score kept before NMS
    iou_thres: float = 0.45  # NMS IoU threshold
    max_det: int = 100  # detections kept per frame
    amp: bool = False  # bf16 autocast
    channels_last: bool = False
    letterbox: str = "repo"  # "repo", or "darknet" for models trained by darknet (data.transforms.letterbox_darknet)
    class_sources: tuple | None = None  # evaluation.class_map.ClassMap.sources: score the model on other classes


def _detect(model, images: torch.Tensor, settings: PredictSettings, device) -> list[Detections]:
    """(B, 3, H, W) uint8 (or float32 in [0, 1]) -> B Detections in input pixels."""
    x = to_input(images, device, settings.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=settings.amp):
        outputs = model(x)
    decoded = decode([o.float() for o in outputs], model.heads)  # (B, K, 5 + C)
    if settings.class_sources is not None:
        decoded = torch.cat([decoded[..., :5], map_scores(decoded[..., 5:], settings.class_sources)], dim=-1)
    return postprocess(decoded, settings.conf_thres, settings.iou_thres, settings.max_det)


@torch.no_grad()
def predict(model, dataset, settings: PredictSettings, device, indices=None) -> dict[int, FrameLabels]:
    """Detections of the frames ``indices`` of a KittiDataset (default: all), keyed by dataset position."""
    model.eval()
    loader = build_eval_loader(dataset, settings.batch_size, settings.size, settings.workers, indices=indices,
                               letterbox=settings.letterbox)
    position = {frame_id: i for i, frame_id in enumerate(dataset.ids)}
    out = {}
    for batch in loader:
        for frame_id, lb, det in zip(batch.ids, batch.letterbox, _detect(model, batch.images, settings, device)):
            out[position[frame_id]] = to_frame(det, lb, dataset.classes)
    return out


def detect_image(model, image: np.ndarray, settings: PredictSettings, device, classes) -> FrameLabels:
    """One RGB frame (H, W, 3) uint8 -> its detections in frame pixels."""
    boxed, lb = letterbox_darknet(image, settings.size) if settings.letterbox == "darknet" else letterbox(
        image, settings.size)
    return detect_letterboxed(model, boxed, lb, settings, device, classes)


@torch.no_grad()
def detect_letterboxed(model, boxed: np.ndarray, lb: Letterbox, settings: PredictSettings, device,
                       classes) -> FrameLabels:
    """One frame already letterboxed to the input, ``(H, W, 3)`` uint8 or float32 in [0, 1] RGB, with its
    Letterbox -> its detections in frame pixels (benchmarks compare preprocessings through it)."""
    model.eval()
    images = torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1)))[None]
    return to_frame(_detect(model, images, settings, device)[0], lb, classes)


def to_frame(det: Detections, lb: Letterbox, classes) -> FrameLabels:
    """Detections in input pixels -> a result-file frame in frame pixels (letterbox undone, clipped to the frame)."""
    boxes = clip_boxes(unletterbox_boxes(det.boxes.cpu().numpy().astype(np.float64), lb), lb.orig_w, lb.orig_h)
    return detections_frame([classes[int(c)] for c in det.classes], boxes, det.scores.cpu().numpy())

"""Model evaluation: frames -> detections in frame pixels -> KITTI AP and COCO mAP.

Used by training (every --eval-every epochs), eval.py --weights and detect.py. Under DDP each rank predicts a
strided shard of the frames; detections are gathered and put back in frame order before scoring, so the result
does not depend on the world size's split of the work.
"""
from __future__ import annotations

import numpy as np
import torch

from data.kitti_labels import FrameLabels, detections_frame
from data.loader import build_eval_loader
from data.transforms import unletterbox_boxes
from models.head import decode
from utils.engine import to_input
from utils.metrics import evaluate_frames
from utils.nms import postprocess

HEADLINE_CLASSES = ("Car", "Pedestrian", "Cyclist")
HEADLINE_NAME = "KITTI AP40 Moderate (mean of Car/Pedestrian/Cyclist)"


def headline(metrics: dict) -> float:
    """KITTI AP40 Moderate, mean over Car/Pedestrian/Cyclist (evaluable ones); COCO mAP@0.5 if none is.

    The metric best.pt is chosen by, in percent.
    """
    values = [metrics["kitti"][c]["AP40"]["moderate"] for c in HEADLINE_CLASSES
              if c in metrics["kitti"] and metrics["kitti"][c]["AP40"]["moderate"] is not None]
    return float(np.mean(values)) if values else float(metrics["coco"]["mAP50"] or 0.0)


@torch.no_grad()
def predict(model, dataset, cfg, device, indices=None) -> dict[int, FrameLabels]:
    """Detections (as result-file frames, in frame pixels) for the frames ``indices`` (default: all)."""
    model.eval()
    size = tuple(cfg.eval_size or cfg.img_size)
    loader = build_eval_loader(dataset, cfg.batch_size, size, cfg.workers, indices=indices)
    position = {frame_id: i for i, frame_id in enumerate(dataset.ids)}
    out = {}
    for batch in loader:
        x = to_input(batch.images, device, cfg.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
            outputs = model(x)
        dets = postprocess(decode([o.float() for o in outputs], model.heads), cfg.conf_thres, cfg.iou_thres,
                           cfg.max_det)
        for frame_id, lb, det in zip(batch.ids, batch.letterbox, dets):
            out[position[frame_id]] = to_frame(det, lb, dataset.classes)
    return out


def to_frame(det, lb, classes) -> FrameLabels:
    """Detections in input pixels -> a result-file frame in frame pixels (letterbox undone, clipped to the frame)."""
    boxes = unletterbox_boxes(det.boxes.cpu().numpy().astype(np.float64), lb)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, lb.orig_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, lb.orig_h)
    return detections_frame([classes[int(c)] for c in det.classes], boxes, det.scores.cpu().numpy())


def evaluate(model, dataset, cfg, device, dist) -> dict | None:
    """Score the model on ``dataset``; the metrics dict on rank 0 (None on other ranks)."""
    mine = list(range(dist.rank, len(dataset), dist.world_size))
    frames = {}
    for part in dist.gather(predict(model, dataset, cfg, device, mine)):
        frames.update(part)
    model.train()
    if not dist.is_main:
        return None
    order = range(len(dataset))
    return evaluate_frames([dataset.labels[i] for i in order], [frames[i] for i in order], list(cfg.classes))


def load_for_inference(path: str, **overrides):
    """A checkpoint's model in eval mode and its config (with ``overrides`` applied), in its determinism mode."""
    import dataclasses

    from utils import checkpoint, seed
    from utils.config import from_dict, validate
    from utils.session import select_device
    from utils.trainer import build_model
    ckpt = checkpoint.load(path)
    cfg = validate(dataclasses.replace(from_dict(ckpt["config"]),
                                       **{k: v for k, v in overrides.items() if v is not None}))
    seed.configure(cfg.determinism, cfg.seed, cfg.threads, cfg.fill_uninitialized_memory)
    device = select_device(cfg.device)
    model = build_model(cfg, device)
    checkpoint.check_model_state(path, ckpt["model"], model.state_dict())
    model.load_state_dict(ckpt["model"])
    return model.eval(), cfg, device


@torch.no_grad()
def detect_image(model, image: np.ndarray, cfg, device) -> FrameLabels:
    """One RGB frame (H, W, 3) uint8 -> detections in frame pixels, as a result-file frame."""
    from data.transforms import letterbox
    size = tuple(cfg.eval_size or cfg.img_size)
    boxed, lb = letterbox(image, size)
    x = to_input(torch.from_numpy(np.ascontiguousarray(boxed.transpose(2, 0, 1)))[None], device, cfg.channels_last)
    det = postprocess(decode([o.float() for o in model(x)], model.heads), cfg.conf_thres, cfg.iou_thres,
                      cfg.max_det)[0]
    return to_frame(det, lb, cfg.classes)

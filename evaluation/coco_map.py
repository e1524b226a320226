"""COCO-style box mAP of KITTI frames via pycocotools, built in memory (no json files), in percent.

Conversion choices:
- Categories are ``classes`` (the training class list; the 8 KITTI classes by default), matched to object names
  case-insensitively. GT objects of other classes are not GT of any category; detections of other classes are dropped.
  So with Car, Pedestrian and Cyclist only, a Car detection on a Van is an FP here (KITTI ignores it).
- Every DontCare region becomes an ``iscrowd=1`` GT of every category: pycocotools matches a detection to a crowd
  region by intersection over the *detection* area >= the IoU threshold, and then ignores it (neither TP nor FP),
  the COCO analogue of KITTI's DontCare rule (KITTI: > 0.7 Car / 0.5 Ped/Cyc; here 0.5 ... 0.95 with the COCO IoU).
- All GT count (no KITTI height/occlusion/truncation filter); area = box w * h; pycocotools' defaults otherwise
  (101 recall points, IoU 0.50:0.05:0.95, area "all", at most 100 detections per image and category); mAP and mAP50
  are ``COCOeval.summarize()``'s first two numbers, computed without its printing.
- A category without GT (crowd regions aside) is not evaluable: None, and it is left out of mAP, as pycocotools does.
"""
from __future__ import annotations

import contextlib
import io

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from data.kitti_labels import KITTI_CLASSES, FrameLabels


def coco_map(gt: list[FrameLabels], dt: list[FrameLabels], classes=KITTI_CLASSES) -> dict:
    """COCO box AP of detections ``dt`` against labels ``gt`` (same frame order).

    Returns:
        ``{"mAP": AP@[.5:.95], "mAP50": AP@.5, "per_class": {cls: AP@[.5:.95]}}`` in percent, None where no GT.
    """
    if len(gt) != len(dt):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(dt)} detection frames")
    category = {c.lower(): i + 1 for i, c in enumerate(classes)}
    dataset = _gt_dataset(gt, classes, category)
    results = _dt_results(dt, category)
    with_gt = {a["category_id"] for a in dataset["annotations"] if not a["iscrowd"]}
    if not results:  # pycocotools cannot load an empty result list; every evaluable category scores 0
        per_class = {c: 0.0 if category[c.lower()] in with_gt else None for c in classes}
        zero = 0.0 if with_gt else None
        return {"mAP": zero, "mAP50": zero, "per_class": per_class}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        coco_gt = COCO()
        coco_gt.dataset = dataset
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(results), "bbox")
        # Only what mAP and mAP50 use (summarize()'s stats[0] and [1]): area "all", 100 detections. Other area
        # ranges would triple the time and change nothing here.
        evaluator.params.areaRng, evaluator.params.areaRngLbl = [[0.0, 1e10]], ["all"]
        evaluator.params.maxDets = [100]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][:, :, :, 0, 0]  # (IoU 10, recall 101, K)
    return {"mAP": _mean_ap(precision), "mAP50": _mean_ap(precision[:1]),
            "per_class": {c: _mean_ap(precision[:, :, k]) for k, c in enumerate(classes)}}


def _gt_dataset(gt: list[FrameLabels], classes, category: dict) -> dict:
    """COCO ground-truth dict: images 1..N, categories 1..K, objects of the categories and DontCare crowd regions."""
    annotations = []

    def add(image_id, category_id, box, crowd):
        x1, y1, x2, y2 = (float(v) for v in box)
        annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category_id,
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1), "iscrowd": crowd})

    for i, frame in enumerate(gt):
        for name, box in zip(frame.names, frame.boxes):
            if name.lower() in category:
                add(i + 1, category[name.lower()], box, 0)
        for box in frame.dontcare:
            for category_id in category.values():
                add(i + 1, category_id, box, 1)
    return {"images": [{"id": i + 1} for i in range(len(gt))], "annotations": annotations,
            "categories": [{"id": category[c.lower()], "name": c} for c in classes]}


def _dt_results(dt: list[FrameLabels], category: dict) -> list[dict]:
    """COCO result list: detections of the categories, frame by frame in file order."""
    results = []
    for i, frame in enumerate(dt):
        if frame.scores is None:
            raise ValueError(f"detection frame {i} has no scores (read result files with results=True)")
        for name, box, score in zip(frame.names, frame.boxes.tolist(), frame.scores.tolist()):
            if name.lower() in category:
                x1, y1, x2, y2 = box
                results.append({"image_id": i + 1, "category_id": category[name.lower()],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "score": score})
    return results


def _mean_ap(precision: np.ndarray) -> float | None:
    """summarize()'s mean over the entries > -1 (-1 marks a category without GT), in percent."""
    valid = precision[precision > -1]
    return float(np.mean(valid)) * 100 if valid.size else None

"""KITTI result directories: one 16-field file per frame (``DIR/<id>.txt``, empty when the frame has no detection),
and reading result and label directories back as ``FrameLabels`` for evaluation."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from data.kitti_labels import (
    KITTI_CLASSES,
    FrameLabels,
    detections_frame,
    read_label_file,
    write_result_file,
)
from utils.boxes import clip_boxes
from utils.errors import UserError

LOG = logging.getLogger(__name__)


def write_results(out_dir: str | Path, ids: list[str], detections_per_frame: list, image_sizes=None) -> None:
    """Write ``out_dir/<id>.txt`` for every frame, an empty file when it has no detections.

    Args:
        ids: N frame ids such as "000123".
        detections_per_frame: N tuples ``(names (K,), boxes (K, 4) xyxy frame pixels, scores (K,))``.
        image_sizes: N (width, height) to clip boxes to, or None. A box with no area left after clipping and
            rounding to the file's 2 decimals covers no pixel and would not read back
            (``data.kitti_labels.read_label_file`` rejects it); it is dropped.
    """
    if len(ids) != len(detections_per_frame) or (image_sizes is not None and len(image_sizes) != len(ids)):
        raise ValueError(f"{len(ids)} ids, {len(detections_per_frame)} detection frames and "
                         f"{'no' if image_sizes is None else len(image_sizes)} image sizes: counts must match")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for i, (frame_id, (names, boxes, scores)) in enumerate(zip(ids, detections_per_frame)):
        size = None if image_sizes is None else image_sizes[i]
        boxes = _clip_and_round(np.asarray(boxes, np.float64).reshape(-1, 4), size)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        write_result_file(out_dir / f"{frame_id}.txt", [n for n, k in zip(names, keep) if k], boxes[keep],
                          np.asarray(scores, np.float64).reshape(-1)[keep])


def _clip_and_round(boxes: np.ndarray, image_size) -> np.ndarray:
    """(K, 4) -> clipped to (width, height) when given, then rounded exactly as the file's ``%.2f`` writes them."""
    if image_size is not None:
        boxes = clip_boxes(boxes, *image_size)
    return np.array([[float(f"{v:.2f}") for v in row] for row in boxes.tolist()], dtype=np.float64).reshape(-1, 4)


def read_results(results_dir: str | Path, ids: list[str], known_classes=KITTI_CLASSES,
                 missing: list | None = None) -> list[FrameLabels]:
    """Result files of ``ids`` (16 fields a line) -> N frames with scores, in ``ids`` order.

    A line with another field count raises ``KittiFormatError`` naming file and line (the devkit would silently
    drop it). An id without a file counts as a frame with no detections (the devkit would abort); all such ids
    are reported in one warning and appended to ``missing`` when given. When no id has a file, the directory or
    the ids are wrong (a table of zeros would hide it): UserError naming the directory and the first expected file.
    """
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise FileNotFoundError(f"{results_dir}: result directory not found")
    frames, absent = [], []
    for frame_id in ids:
        path = results_dir / f"{frame_id}.txt"
        if path.is_file():
            frames.append(read_label_file(path, known_classes, results=True))
        else:
            absent.append(frame_id)
            frames.append(detections_frame([], np.zeros((0, 4)), []))
    if ids and len(absent) == len(ids):
        raise UserError(f"{results_dir}: none of the {len(ids)} frames has a result file here (first expected: "
                        f"{results_dir / (ids[0] + '.txt')}); check the result directory and the split's frame ids")
    if absent:
        LOG.warning("%d of %d frames have no result file in %s: treated as no detections (first: %s)",
                    len(absent), len(ids), results_dir, absent[0])
    if missing is not None:
        missing.extend(absent)
    return frames


def read_labels(label_dir: str | Path, ids: list[str], known_classes=KITTI_CLASSES) -> list[FrameLabels]:
    """Label files ``label_dir/<id>.txt`` (15 fields a line) -> N ground-truth frames; a missing file is an error."""
    label_dir = Path(label_dir)
    frames = []
    for frame_id in ids:
        path = label_dir / f"{frame_id}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: label file of frame {frame_id} not found")
        frames.append(read_label_file(path, known_classes))
    return frames


def label_ids(label_dir: str | Path) -> list[str]:
    """Ids of every ``*.txt`` in ``label_dir``, sorted."""
    ids = sorted(p.stem for p in Path(label_dir).glob("*.txt"))
    if not ids:
        raise FileNotFoundError(f"{label_dir}: no label files (*.txt) found")
    return ids

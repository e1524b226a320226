"""KITTI label and result files: parsing with file:line errors, the FrameLabels record, and writing results.

Line format: 15 whitespace-separated fields per object (type, truncated, occluded, alpha, bbox x1 y1 x2 y2,
dimensions h w l, location x y z, rotation_y); result files add a 16th, the score. Boxes are absolute pixel
``(x1, y1, x2, y2)`` (KITTI's left, top, right, bottom; 0-based, continuous, no +1).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from utils.errors import UserError
from utils.io import write_text

LOG = logging.getLogger(__name__)

KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
DONTCARE = "DontCare"
LABEL_FIELDS = 15
RESULT_FIELDS = 16


class KittiFormatError(UserError):
    """A label, result or split file that does not follow the KITTI format; names file, line and expectation."""


@dataclass(frozen=True)
class FrameLabels:
    """Every object of one label (or result) file; K objects, D DontCare regions.

    Attributes:
        names: (K,) class names as written in the file (DontCare excluded).
        truncated: (K,) float64 in [0, 1]; -1 for results.
        occluded: (K,) int64 in {0, 1, 2, 3}; -1 for results.
        alpha: (K,) float64 observation angle in rad, -10 when unknown.
        boxes: (K, 4) float64 xyxy pixels.
        dimensions: (K, 3) float64 height, width, length in m.
        location: (K, 3) float64 x, y, z in camera coordinates, m.
        rotation_y: (K,) float64 rad.
        scores: (K,) float64 for result files, None for ground truth.
        dontcare: (D, 4) float64 xyxy pixels of DontCare regions.
        lines: (K,) int64 1-based line number of each object in its file.
    """

    names: tuple[str, ...]
    truncated: np.ndarray
    occluded: np.ndarray
    alpha: np.ndarray
    boxes: np.ndarray
    dimensions: np.ndarray
    location: np.ndarray
    rotation_y: np.ndarray
    scores: np.ndarray | None
    dontcare: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.names)

    def select(self, keep: np.ndarray) -> FrameLabels:
        """The objects where the bool mask ``keep`` (K,) is True; DontCare regions unchanged."""
        return FrameLabels(names=tuple(n for n, k in zip(self.names, keep) if k), truncated=self.truncated[keep],
                           occluded=self.occluded[keep], alpha=self.alpha[keep], boxes=self.boxes[keep],
                           dimensions=self.dimensions[keep], location=self.location[keep],
                           rotation_y=self.rotation_y[keep],
                           scores=None if self.scores is None else self.scores[keep], dontcare=self.dontcare,
                           lines=self.lines[keep])


def _parse_line(text: str, where: str, num_fields: int) -> tuple[str, np.ndarray]:
    """One label/result line -> (class name, float64 values of fields 2..num_fields). Raises KittiFormatError."""
    fields = text.split()
    if len(fields) != num_fields:
        raise KittiFormatError(f"{where}: expected {num_fields} space-separated fields, found {len(fields)}: {text!r}")
    try:
        values = np.array([float(v) for v in fields[1:]], dtype=np.float64)
    except ValueError:
        raise KittiFormatError(f"{where}: fields 2-{num_fields} must be numbers: {text!r}") from None
    if not np.isfinite(values).all():
        raise KittiFormatError(f"{where}: NaN or infinite value in {text!r}")
    x1, y1, x2, y2 = values[3:7]
    if x2 <= x1 or y2 <= y1:
        raise KittiFormatError(f"{where}: box needs right > left and bottom > top, got {x1} {y1} {x2} {y2}: {text!r}")
    return fields[0], values


def read_label_file(path: str | Path, known_classes=KITTI_CLASSES, results: bool = False,
                    bad_lines: str = "error", skipped: list | None = None) -> FrameLabels:
    """Parse one KITTI label file (15 fields) or result file (``results=True``, 16 fields).

    Args:
        known_classes: class names accepted besides DontCare; any other name is an error.
        bad_lines: "error" raises KittiFormatError on the first bad line; "skip" logs it with file:line,
            appends the message to ``skipped`` and goes on.
    """
    path = Path(path)
    if bad_lines not in ("error", "skip"):
        raise ValueError(f"bad_lines must be 'error' or 'skip', got {bad_lines!r}")
    try:
        text = path.read_text()
    except OSError as exc:
        raise KittiFormatError(f"{path}: cannot read {'result' if results else 'label'} file: {exc}") from None
    num_fields = RESULT_FIELDS if results else LABEL_FIELDS
    objects, dontcare = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            name, values = _parse_line(line, where, num_fields)
            if name != DONTCARE and name not in known_classes:
                raise KittiFormatError(f"{where}: unknown class {name!r} (expected one of "
                                       f"{', '.join(known_classes)} or {DONTCARE}): {line!r}")
        except KittiFormatError as exc:
            if bad_lines == "error":
                raise
            LOG.warning("skipping bad line: %s", exc)
            if skipped is not None:
                skipped.append(str(exc))
            continue
        if name == DONTCARE:
            dontcare.append(values[3:7])
        else:
            objects.append((name, values, lineno))
    return _frame_labels(objects, dontcare, results)


def _frame_labels(objects: list, dontcare: list, results: bool) -> FrameLabels:
    values = np.array([v for _, v, _ in objects], dtype=np.float64).reshape(-1, RESULT_FIELDS - 1 if results
                                                                            else LABEL_FIELDS - 1)
    return FrameLabels(
        names=tuple(n for n, _, _ in objects),
        truncated=values[:, 0].copy(),
        occluded=values[:, 1].astype(np.int64),
        alpha=values[:, 2].copy(),
        boxes=values[:, 3:7].copy(),
        dimensions=values[:, 7:10].copy(),
        location=values[:, 10:13].copy(),
        rotation_y=values[:, 13].copy(),
        scores=values[:, 14].copy() if results else None,
        dontcare=np.array(dontcare, dtype=np.float64).reshape(-1, 4),
        lines=np.array([ln for _, _, ln in objects], dtype=np.int64),
    )


def detections_frame(names, boxes, scores) -> FrameLabels:
    """Detections as a result-file frame: K names, (K, 4) xyxy pixels, (K,) scores; 3D fields at their invalid
    defaults (what a 2D detector writes)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    k = len(boxes)
    return FrameLabels(names=tuple(names), truncated=np.full(k, -1.0), occluded=np.full(k, -1, dtype=np.int64),
                       alpha=np.full(k, -10.0), boxes=boxes, dimensions=np.full((k, 3), -1.0),
                       location=np.full((k, 3), -1000.0), rotation_y=np.full(k, -10.0),
                       scores=np.asarray(scores, dtype=np.float64).reshape(k), dontcare=np.zeros((0, 4)),
                       lines=np.zeros(k, dtype=np.int64))


def format_result_line(name: str, box, score: float) -> str:
    """A 16-field 2D detection line with the devkit's invalid defaults for every 3D field (alpha -10 disables AOS)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    if not math.isfinite(score):
        raise ValueError(f"non-finite score {score} for {name} {box}")
    return (f"{name} -1 -1 -10 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} "
            f"-1 -1 -1 -1000 -1000 -1000 -10 {score:.6f}")


def write_result_file(path: str | Path, names, boxes, scores) -> None:
    """Write one frame's detections as KITTI result lines (an empty file when there are none), atomically.

    Args:
        names: (K,) class names.
        boxes: (K, 4) xyxy frame pixels, as written (callers clip; evaluation.results.write_results does).
        scores: (K,) confidences, higher is more confident.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    lines = [format_result_line(n, b, float(s)) for n, b, s in zip(names, boxes, scores)]
    write_text(path, "".join(line + "\n" for line in lines))

"""The KITTI 2D object layout: split lists, label and result files, and the frame Dataset.

Layout (``ROOT`` as passed by ``--data``)::

    ROOT/training/image_2/NNNNNN.png     8-bit RGB, sizes vary (1224x370 ... 1242x376)
    ROOT/training/label_2/NNNNNN.txt     15 fields per object (ground truth)
    ROOT/ImageSets/{train,val}.txt       one id per line (the last line may lack its newline)

Boxes are absolute pixel ``(x1, y1, x2, y2)`` (KITTI's left, top, right, bottom; 0-based, continuous, no +1).
Result files use the same line format plus a 16th field, the score.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

LOG = logging.getLogger(__name__)

KITTI_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")
DONTCARE = "DontCare"
LABEL_FIELDS = 15
RESULT_FIELDS = 16


class KittiFormatError(ValueError):
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


def write_result_file(path: str | Path, names, boxes, scores, image_size: tuple[int, int] | None = None) -> None:
    """Write one frame's detections as KITTI result lines (an empty file when there are none), atomically.

    Args:
        names: (K,) class names.
        boxes: (K, 4) xyxy pixels; clipped to ``image_size`` = (width, height) when given.
        scores: (K,) confidences, higher is more confident.
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    if image_size is not None:
        w, h = image_size
        boxes = np.stack([boxes[:, 0].clip(0, w), boxes[:, 1].clip(0, h),
                          boxes[:, 2].clip(0, w), boxes[:, 3].clip(0, h)], axis=1)
    lines = [format_result_line(n, b, float(s)) for n, b, s in zip(names, boxes, scores)]
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def split_path(root: str | Path, split: str) -> Path:
    """The list file of a split: a name means ``ROOT/ImageSets/<name>.txt``; a ``.txt`` or existing file is a path."""
    candidate = Path(split)
    return candidate if candidate.suffix == ".txt" or candidate.is_file() else Path(root) / "ImageSets" / f"{split}.txt"


def read_split_lines(root: str | Path, split: str) -> list[tuple[str, int]]:
    """``(frame id, 1-based line number)`` of every id in a split list (see ``split_path``), in file order.

    Ids are whitespace-separated, so a last line without its newline is read like any other.
    """
    path = split_path(root, split)
    try:
        text = path.read_text()
    except OSError as exc:
        raise KittiFormatError(f"{path}: cannot read split list '{split}': {exc}") from None
    entries = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        for frame_id in line.split():
            if not (frame_id.isascii() and frame_id.isdigit()):
                raise KittiFormatError(f"{path}:{lineno}: expected a numeric frame id like 000123, got {frame_id!r}")
            entries.append((frame_id, lineno))
    if not entries:
        raise KittiFormatError(f"{path}: split list is empty")
    return entries


def read_split(root: str | Path, split: str) -> list[str]:
    """Frame ids of a split: a name (``ROOT/ImageSets/<name>.txt``) or a path to a list file."""
    return [frame_id for frame_id, _ in read_split_lines(root, split)]


IMAGE_DIR = Path("training") / "image_2"
LABEL_DIR = Path("training") / "label_2"
CACHE_MODES = ("none", "ram")


def decode_image(path: str | Path) -> np.ndarray:
    """Decode one frame -> ``uint8[H, W, 3]`` RGB at its own size (KITTI sizes vary). Raises KittiFormatError."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    # imread returns None, never raises, for a missing, truncated or non-image file (libpng stops at the cut).
    if image is None:
        raise KittiFormatError(f"{path}: cannot decode image (missing, unreadable, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class KittiDataset:
    """The frames of one split: ids, every label parsed and checked up front, images decoded on demand.

    Attributes:
        ids: frame ids in split-file order; index ``i`` everywhere means ``ids[i]``.
        split_file: the split list the ids came from.
        classes: the trained class names; class index = position in this tuple.
        labels: ``labels[i]`` is the FrameLabels of frame i (every object, trained or not, and DontCare apart).
        skipped: messages (``file:line: reason``) of label lines skipped with ``bad_labels="skip"``.

    ``cache="ram"`` decodes every frame here, in the main process, before any DataLoader worker exists: forked
    workers (Linux default) then share those pages copy-on-write instead of each keeping its own copy. It costs
    H*W*3 bytes per frame (~1.4 MB at 1242x375, ~5.2 GB for the 3712 train frames) and the decode time up front.
    """

    def __init__(self, root: str | Path, split: str, classes=KITTI_CLASSES, bad_labels: str = "error",
                 cache: str = "none"):
        if cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {cache!r}")
        if bad_labels not in ("error", "skip"):
            raise ValueError(f"bad_labels must be 'error' or 'skip', got {bad_labels!r}")
        self.root = Path(root)
        self.classes = _check_classes(classes)
        self._index = {name: i for i, name in enumerate(self.classes)}
        self.split_file = split_path(root, split)
        entries = read_split_lines(root, split)
        self.ids = _unique_ids(entries, self.split_file)
        _check_files_exist(self, entries)
        self.skipped: list[str] = []
        # Objects of KITTI classes outside `classes` (e.g. Van when training Car only) are kept, not errors.
        known = tuple(dict.fromkeys(KITTI_CLASSES + self.classes))
        self.labels = [read_label_file(self.label_path(i), known, bad_lines=bad_labels, skipped=self.skipped)
                       for i in range(len(self.ids))]
        self._cache = [decode_image(self.image_path(i)) for i in range(len(self.ids))] if cache == "ram" else None

    def __len__(self) -> int:
        return len(self.ids)

    def image_path(self, i: int) -> Path:
        return self.root / IMAGE_DIR / f"{self.ids[i]}.png"

    def label_path(self, i: int) -> Path:
        return self.root / LABEL_DIR / f"{self.ids[i]}.txt"

    def load_image(self, i: int) -> np.ndarray:
        """Frame i as ``uint8[H, W, 3]`` RGB; read-only when it comes from the RAM cache (transforms copy)."""
        if self._cache is None:
            return decode_image(self.image_path(i))
        view = self._cache[i].view()
        view.flags.writeable = False
        return view

    def class_index(self, names) -> np.ndarray:
        """``(K,)`` names -> ``int64[K]`` index into ``classes``; -1 for a class that is kept but not trained."""
        return np.array([self._index.get(name, -1) for name in names], dtype=np.int64).reshape(-1)


def _check_classes(classes) -> tuple[str, ...]:
    classes = tuple(classes)
    if not classes or not all(isinstance(c, str) and c for c in classes):
        raise ValueError(f"classes must be a non-empty sequence of class names, got {classes!r}")
    if len(set(classes)) != len(classes) or DONTCARE in classes:
        raise ValueError(f"classes must be unique and exclude {DONTCARE}, got {classes!r}")
    return classes


def _unique_ids(entries: list[tuple[str, int]], path: Path) -> list[str]:
    """Ids in order; a repeated id would count its objects twice in training and evaluation, so it is an error."""
    first = {}
    for frame_id, lineno in entries:
        if frame_id in first:
            raise KittiFormatError(f"{path}:{lineno}: frame id {frame_id} repeats line {first[frame_id]}")
        first[frame_id] = lineno
    return [frame_id for frame_id, _ in entries]


def _check_files_exist(dataset: KittiDataset, entries: list[tuple[str, int]]) -> None:
    """Fail at construction, not hours into training, on a listed frame whose image or label is missing."""
    for i, (_, lineno) in enumerate(entries):
        for kind, file in (("image", dataset.image_path(i)), ("label", dataset.label_path(i))):
            if not file.is_file():
                raise KittiFormatError(f"{file}: {kind} file missing for the frame listed at "
                                       f"{dataset.split_file}:{lineno}")

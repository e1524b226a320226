"""The KITTI 2D object layout: split lists, image decoding and the frame Dataset (label files: data/kitti_labels.py).

Layout (``ROOT`` as passed by ``--data``)::

    ROOT/training/image_2/NNNNNN.png     8-bit RGB, sizes vary (1224x370 ... 1242x376)
    ROOT/training/label_2/NNNNNN.txt     15 fields per object (ground truth)
    ROOT/ImageSets/{train,val}.txt       one id per line (the last line may lack its newline)
"""
from __future__ import annotations

import logging
import struct
from pathlib import Path

import cv2
import numpy as np

from data.kitti_labels import (
    DONTCARE,
    KITTI_CLASSES,
    FrameLabels,
    KittiFormatError,
    read_label_file,
)
from utils.errors import UserError


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


LOG = logging.getLogger(__name__)
IMAGE_DIR = Path("training") / "image_2"
LABEL_DIR = Path("training") / "label_2"
CACHE_MODES = ("none", "ram")


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of a frame: from a PNG's IHDR chunk without decoding it, else by decoding."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) == 24 and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        return struct.unpack(">II", head[16:24])
    height, width = decode_image(path).shape[:2]
    return width, height


def decode_image(path: str | Path) -> np.ndarray:
    """Decode one frame -> ``uint8[H, W, 3]`` RGB at its own size (KITTI sizes vary). Raises KittiFormatError."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    # imread returns None, never raises, for a missing, truncated or non-image file (libpng stops at the cut).
    if image is None:
        raise KittiFormatError(f"{path}: cannot decode image (missing, unreadable, truncated or not an image)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class KittiDataset:
    """The frames of one split: ids, every label parsed and checked up front, images decoded on demand.
    ``len(ds)`` frames; ``ds[i]`` is ``(image, labels)`` (``__getitem__``), so a stock DataLoader reads it.

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
        self.labels = [self._inside_image(i, read_label_file(self.label_path(i), known, bad_lines=bad_labels,
                                                             skipped=self.skipped), bad_labels)
                       for i in range(len(self.ids))]
        self._cache = [decode_image(self.image_path(i)) for i in range(len(self.ids))] if cache == "ram" else None

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[np.ndarray, FrameLabels]:
        """Frame i as ``(image, labels)``: ``uint8[H, W, 3]`` RGB at the frame's own size (``load_image``), and
        its FrameLabels (every object, trained or not, boxes xyxy in that image's pixels, DontCare regions apart;
        ``class_index(labels.names)`` gives the class indices). A stock ``torch.utils.data.DataLoader`` takes the
        dataset as it is, with ``batch_size=None`` (one frame at a time, the image as a tensor) or
        ``collate_fn=list`` (lists of frames): frames differ in size, so the default collate cannot stack them."""
        return self.load_image(i), self.labels[i]

    def _inside_image(self, i: int, labels: FrameLabels, bad_labels: str) -> FrameLabels:
        """``labels`` without objects whose box lies entirely outside the image: a wrong label, an error unless
        ``bad_labels="skip"`` (training would drop it silently, evaluation count it as unmatchable ground truth)."""
        width, height = image_size(self.image_path(i))
        x1, y1, x2, y2 = labels.boxes.T
        outside = (x1 >= width) | (y1 >= height) | (x2 <= 0) | (y2 <= 0)
        for k in np.flatnonzero(outside):
            message = (f"{self.label_path(i)}:{labels.lines[k]}: box {' '.join(f'{v:g}' for v in labels.boxes[k])} "
                       f"lies entirely outside the {width}x{height} image")
            if bad_labels == "error":
                raise KittiFormatError(f"{message} (fix the line, or pass --bad-labels skip)")
            LOG.warning("skipping bad line: %s", message)
            self.skipped.append(message)
        return labels.select(~outside) if outside.any() else labels

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
        raise UserError(f"classes must be a non-empty sequence of class names, got {classes!r}")
    if len(set(classes)) != len(classes) or DONTCARE in classes:
        raise UserError(f"classes must be unique and exclude {DONTCARE}, got {classes!r}")
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

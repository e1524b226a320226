"""Paired image/box transforms: pure functions ``(rng, image, boxes, ...) -> (image, boxes, ...)``.

Images are ``uint8[H, W, 3]`` RGB (HWC) until ``augment`` returns CHW. Boxes are ``float64[N, 4]`` xyxy pixels of the
image they travel with, continuous coordinates (pixel i spans [i, i+1)). Every random decision comes from the NumPy
Generator passed in; nothing here reads or seeds a global RNG, so a sample's augmentation is a function of its rng
seed alone (data/loader.py keys it by run seed, epoch and sample index).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np

from utils.boxes import clip_boxes
from utils.errors import UserError

STRIDE = 32  # YOLOv3's largest stride: input sides must be multiples of it
LETTERBOXES = ("repo", "darknet")  # letterbox() and letterbox_darknet()


class Letterbox(NamedTuple):
    """Where a frame sits in the network input, in continuous pixel coordinates (pixel i spans [i, i+1)):
    ``input_x = original_x * scale_x + pad_x`` and ``input_y = original_y * scale_y + pad_y``."""

    scale_x: float  # input pixels per original pixel, horizontally
    scale_y: float  # ... vertically (equal to scale_x for the repo's letterbox)
    pad_x: float  # input x of the frame's left edge (the repo's letterbox: its integer left padding)
    pad_y: float  # input y of the frame's top edge
    orig_w: int  # original frame width, pixels
    orig_h: int  # original frame height, pixels


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation; the defaults are letterbox + horizontal flip only."""

    flip_p: float = 0.5  # probability of a horizontal flip; street scenes are left-right plausible
    hsv: tuple[float, float, float] = (0.0, 0.0, 0.0)  # h, s, v gains g: x *= 1 + U(-g, g); 0 = off (YOLOv5 .015 .7 .4)
    scale: tuple[float, float] = (1.0, 1.0)  # zoom about the input centre drawn from U(lo, hi); (1, 1) = off
    translate: float = 0.0  # shift drawn from U(-t, t) times the input width / height; 0 = off
    pad_value: int = 114  # grey of letterbox padding and of areas uncovered by the affine jitter
    letterbox: str = "repo"  # "repo" (uint8, OpenCV bilinear, pad_value) or "darknet" (float, letterbox_darknet)
    min_box_size: float = 2.0  # after the affine jitter, boxes narrower or shorter than this (px) are dropped
    min_box_visible: float = 0.2  # ... and boxes keeping less than this fraction of their area inside the input

    def __post_init__(self):
        lo, hi = self.scale
        checks = {"flip_p in [0, 1]": 0 <= self.flip_p <= 1,
                  "three hsv gains in [0, 1]": len(self.hsv) == 3 and all(0 <= g <= 1 for g in self.hsv),
                  "0 < scale[0] <= scale[1]": 0 < lo <= hi, "translate in [0, 0.5]": 0 <= self.translate <= 0.5,
                  "pad_value in [0, 255]": 0 <= self.pad_value <= 255, "min_box_size >= 0": self.min_box_size >= 0,
                  "min_box_visible in [0, 1]": 0 <= self.min_box_visible <= 1,
                  f"letterbox in {', '.join(LETTERBOXES)}": self.letterbox in LETTERBOXES,
                  # darknet's letterbox gives float images, which the jitters (uint8 OpenCV ops) do not take
                  "no hsv or affine jitter with the darknet letterbox": self.letterbox == "repo" or not (
                      self.hsv_on or self.affine_on)}
        failed = [name for name, ok in checks.items() if not ok]
        if failed:
            raise UserError(f"augmentation needs {', '.join(failed)}; got {self}")

    @property
    def affine_on(self) -> bool:
        return tuple(self.scale) != (1.0, 1.0) or self.translate > 0

    @property
    def hsv_on(self) -> bool:
        return max(self.hsv) > 0


NO_AUGMENT = AugmentConfig(flip_p=0.0)  # letterbox only: evaluation


def check_input_size(size) -> tuple[int, int]:
    """Validate a network input size ``(W, H)``: positive multiples of 32. Returns it as a tuple of ints."""
    if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v > 0 and v % STRIDE == 0 for v in size):
        raise ValueError(f"input size (W, H) must be two positive multiples of {STRIDE}, got {size!r}")
    return int(size[0]), int(size[1])


def parse_size(text: str | None, flag: str) -> tuple[int, int] | None:
    """A command line's 'W,H' or 'WxH' -> (W, H), positive multiples of 32; None stays None. UserError names
    ``flag``."""
    if text is None:
        return None
    try:
        return check_input_size(tuple(int(v) for v in text.lower().replace("x", ",").split(",")))
    except ValueError:
        raise UserError(f"{flag} expects W,H, two positive multiples of {STRIDE}, got {text!r}") from None


def letterbox(image: np.ndarray, size, pad_value: float = 114) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio to fit ``size`` = (W, H), then pad to it, centred.

    Args:
        image: ``uint8[h, w, C]`` (or float32), any size.
    Returns:
        an image of ``image``'s dtype, ``[H, W, C]``, and the Letterbox: scale = min(W / w, H / h) on both axes,
        integer pads (the odd pixel goes right/bottom).
    """
    width, height = check_input_size(size)
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    # fx/fy (not dsize) make OpenCV sample at exactly `scale` on both axes, so boxes map with that one number.
    resized = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    nh, nw = resized.shape[:2]
    pad_x, pad_y = (width - nw) // 2, (height - nh) // 2
    out = np.full((height, width, *image.shape[2:]), pad_value, dtype=image.dtype)
    out[pad_y:pad_y + nh, pad_x:pad_x + nw] = resized.reshape(nh, nw, *image.shape[2:])  # cv2 drops C=1
    return out, Letterbox(scale, scale, pad_x, pad_y, w, h)


def letterbox_darknet(image: np.ndarray, size, pad_value: float = 0.5) -> tuple[np.ndarray, Letterbox]:
    """darknet's ``letterbox_image`` (src/image.c), value for value in float32: the frame scaled to
    ``new_w x new_h`` (integer division, as darknet) by darknet's ``resize_image``, embedded at the integer
    offsets ``((W - new_w) // 2, (H - new_h) // 2)`` of a ``pad_value``-filled input.

    ``resize_image`` is a separable bilinear resize that maps the corner pixel centres onto each other (source
    column ``c * (w - 1) / (new_w - 1)`` for output column c), horizontally then vertically; OpenCV's INTER_LINEAR
    maps pixel edges instead, so the two sample the frame at other points.

    Args:
        image: ``uint8[h, w, 3]`` RGB (darknet reads RGB and divides by 255).
        size: network input (W, H), multiples of 32.
    Returns:
        ``float32[H, W, 3]`` in [0, 1] and the Letterbox of that resize: the corner pixel centres map exactly, so
        ``scale_x = (new_w - 1) / (w - 1)`` and ``pad_x = offset_x + 0.5 - 0.5 * scale_x`` (y likewise).
    """
    width, height = check_input_size(size)
    h, w = image.shape[:2]
    # darknet compares the two ratios in float32 and sizes the content with integer division
    if np.float32(width) / np.float32(w) < np.float32(height) / np.float32(h):
        new_w, new_h = width, h * width // w
    else:
        new_w, new_h = w * height // h, height
    source = (image.astype(np.float64) / 255.0).astype(np.float32)  # C: (float)byte / 255. stored as float
    columns = _darknet_resize_rows(source.transpose(1, 0, 2), new_w, vertical=False).transpose(1, 0, 2)
    resized = _darknet_resize_rows(columns, new_h, vertical=True)
    off_x, off_y = (width - new_w) // 2, (height - new_h) // 2
    out = np.full((height, width, image.shape[2]), pad_value, dtype=np.float32)
    out[off_y:off_y + new_h, off_x:off_x + new_w] = resized
    sx, sy = (new_w - 1) / (w - 1), (new_h - 1) / (h - 1)
    return out, Letterbox(sx, sy, off_x + 0.5 - 0.5 * sx, off_y + 0.5 - 0.5 * sy, w, h)


def _darknet_resize_rows(image: np.ndarray, rows: int, vertical: bool) -> np.ndarray:
    """One pass of darknet's ``resize_image`` along axis 0: ``float32[n, ...]`` -> ``float32[rows, ...]``.

    Row r reads source row ``i = int(r * scale)`` with ``scale = float32(n - 1) / (rows - 1)`` and weight
    ``d = r * scale - i``: ``(1 - d) * src[i] + d * src[i + 1]``, all in float32. The last row is darknet's too:
    the horizontal pass copies the last source column; the vertical pass keeps only ``(1 - d) * src[i]``.
    """
    n = image.shape[0]
    if n == 1:
        return np.repeat(image, rows, axis=0)
    scale = np.float32(n - 1) / np.float32(max(rows - 1, 1))
    position = np.arange(rows, dtype=np.float32) * scale
    index = np.minimum(position.astype(np.int64), n - 1)
    weight = (position - index.astype(np.float32)).reshape(-1, *([1] * (image.ndim - 1)))
    out = (np.float32(1) - weight) * image[index] + weight * image[np.minimum(index + 1, n - 1)]
    out[-1] = (np.float32(1) - weight[-1]) * image[index[-1]] if vertical else image[-1]
    return out.astype(np.float32, copy=False)


def letterbox_boxes(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """``float[N, 4]`` xyxy original pixels -> ``float64[N, 4]`` input pixels."""
    return (np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([lb.scale_x, lb.scale_y] * 2, np.float64)
            + np.array([lb.pad_x, lb.pad_y] * 2, np.float64))


def unletterbox_boxes(boxes: np.ndarray, lb: Letterbox) -> np.ndarray:
    """``float[N, 4]`` xyxy input pixels -> ``float64[N, 4]`` original-frame pixels (inverse of letterbox_boxes)."""
    return ((np.asarray(boxes, np.float64).reshape(-1, 4) - np.array([lb.pad_x, lb.pad_y] * 2, np.float64))
            / np.array([lb.scale_x, lb.scale_y] * 2, np.float64))


def hflip_boxes(boxes: np.ndarray, width: int) -> np.ndarray:
    """Mirror ``float[N, 4]`` xyxy boxes in an image ``width`` pixels wide: x -> width - x, corners swapped.

    Flipping twice is exact whenever ``width - x`` is representable (e.g. coordinates on a 1/1024-px grid); for
    arbitrary floats it may differ from the input in the last bit.
    """
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    return np.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], axis=1)


def hflip(image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror ``uint8[H, W, C]`` and its ``float[N, 4]`` xyxy boxes left-right."""
    return np.ascontiguousarray(image[:, ::-1]), hflip_boxes(boxes, image.shape[1])


def hsv_jitter(rng: np.random.Generator, image: np.ndarray, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    """Scale hue, saturation and value of ``uint8[H, W, 3]`` RGB by 1 + U(-gain, gain) each (3 draws from rng)."""
    gains = rng.uniform(-1, 1, 3) * (hgain, sgain, vgain) + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float64)
    # Lookup tables: OpenCV's 8-bit hue spans [0, 180) and wraps; saturation and value saturate.
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    hsv = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def random_affine(rng: np.random.Generator, image: np.ndarray, boxes: np.ndarray, scale=(1.0, 1.0),
                  translate: float = 0.0, pad_value: int = 114, min_size: float = 2.0,
                  min_visible: float = 0.2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Zoom about the image centre by s ~ U(scale) and shift by U(-translate, translate) x (W, H) (3 draws).

    Args:
        image: ``uint8[H, W, C]``; the output has the same size, uncovered areas filled with ``pad_value``.
        boxes: ``float[N, 4]`` xyxy pixels.
    Returns:
        image, the kept boxes ``float64[K, 4]`` clipped to the image, and ``keep`` ``bool[N]`` to filter whatever
        travels with the boxes (class ids). A box is dropped when its clipped width or height is below ``min_size``
        px or its clipped area is below ``min_visible`` of its moved, unclipped area.
    """
    h, w = image.shape[:2]
    s = rng.uniform(*scale)
    tx, ty = rng.uniform(-translate, translate, 2) * (w, h)
    ox, oy = (1 - s) * w / 2 + tx, (1 - s) * h / 2 + ty  # continuous map: x' = s * x + ox
    # warpAffine works on pixel centres (x + 0.5): shift by 0.5 * (s - 1) to match the continuous map above.
    matrix = np.array([[s, 0, ox + 0.5 * (s - 1)], [0, s, oy + 0.5 * (s - 1)]])
    out = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(pad_value,) * 3)
    moved = np.asarray(boxes, np.float64).reshape(-1, 4) * s + np.array([ox, oy, ox, oy])
    clipped = clip_boxes(moved, w, h)
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    keep = (cw >= min_size) & (ch >= min_size) & (cw * ch >= min_visible * area)
    return out, clipped[keep], keep


def augment(rng: np.random.Generator, image: np.ndarray, boxes: np.ndarray, cls: np.ndarray, dontcare: np.ndarray,
            size, cfg: AugmentConfig = AugmentConfig()):
    """The training pipeline: (hsv jitter) -> letterbox to ``size`` -> (affine jitter) -> flip with ``cfg.flip_p``.

    Each random step draws from its own child of ``rng`` (``rng.spawn``), so switching one step on or off leaves
    the others' decisions unchanged. DontCare boxes move with the image exactly like object boxes.

    Args:
        image: ``uint8[h, w, 3]`` RGB at the frame's own size.
        boxes: ``float[N, 4]`` xyxy frame pixels; cls: ``int64[N]`` class ids travelling with them.
        dontcare: ``float[D, 4]`` xyxy frame pixels of regions to ignore.
        size: network input (W, H), multiples of 32.
    Returns:
        image ``uint8[3, H, W]``, boxes ``float64[K, 4]`` and cls ``int64[K]`` in input pixels, dontcare
        ``float64[E, 4]``, and the Letterbox that maps input pixels back to the frame. Boxes left with no area
        after clipping to the input are dropped.
    """
    hsv_rng, affine_rng, flip_rng = rng.spawn(3)
    if cfg.hsv_on:
        image = hsv_jitter(hsv_rng, image, *cfg.hsv)
    if cfg.letterbox == "darknet":
        image, lb = letterbox_darknet(image, size)
    else:
        image, lb = letterbox(image, size, cfg.pad_value)
    cls = np.asarray(cls, np.int64).reshape(-1)
    num = len(cls)
    both = np.concatenate([letterbox_boxes(boxes, lb), letterbox_boxes(dontcare, lb)])  # objects, then DontCare
    keep = np.ones(len(both), dtype=bool)
    if cfg.affine_on:
        image, both, keep = random_affine(affine_rng, image, both, cfg.scale, cfg.translate, cfg.pad_value,
                                          cfg.min_box_size, cfg.min_box_visible)
    if flip_rng.random() < cfg.flip_p:
        image, both = hflip(image, both)
    cls, num = cls[keep[:num]], int(keep[:num].sum())
    both = clip_boxes(both, image.shape[1], image.shape[0])
    valid = (both[:, 2] > both[:, 0]) & (both[:, 3] > both[:, 1])
    return (np.ascontiguousarray(image.transpose(2, 0, 1)), both[:num][valid[:num]], cls[valid[:num]],
            both[num:][valid[num:]], lb)

"""Synthetic KITTI-format driving scenes: the embedded default dataset (training without --data runs on it).

    python -m data.synthetic --out /tmp/kitti_synth --num 400 --seed 0 [--val-fraction 0.5]

writes the KITTI layout of data/kitti.py (training/image_2/NNNNNN.png, training/label_2/NNNNNN.txt with all 15
fields, ImageSets/{train,val}.txt) and MANIFEST.json last. Frame i is a pure function of (seed, i): every choice comes
from ``np.random.default_rng([seed, i])``, so a frame depends neither on other frames, nor on ``num``, nor on thread
counts, and the same seed gives byte-identical files.

Geometry: a level camera (KITTI's focal length and height) over a flat road. An object whose bottom edge lies d rows
below the horizon stands at depth z = f * cam_height / d and is height_m * d / cam_height px tall, so objects shrink
toward the horizon; location x follows from the column of the box centre. Objects are drawn far to near; the id map of
the drawing gives each object's visible fraction (occluded 0/1/2) and its tight box, the unclipped box its truncation.
Objects drawn under MIN_HEIGHT px are labelled DontCare, as KITTI does for far objects.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data.synthetic_scene import (
    CAM_HEIGHT,
    FOCAL,
    SIDEWALK,
    Street,
    add_noise,
    draw_background,
    draw_shadow,
    sample_street,
)
from data.synthetic_sprites import Painter, draw_sprite
from utils.errors import UserError, run_cli
from utils.io import write_text

LOG = logging.getLogger(__name__)

GENERATOR_VERSION = 1   # bump whenever any output byte changes, so cached datasets are regenerated
# zlib RLE strategy: on these flat-shaded frames it is smaller (~185 KiB) and faster (~15 ms) than the default
# strategy at level 3 (~200 KiB, ~27 ms) or 6 (~170 KiB, ~60 ms); with RLE the level barely matters. Both are fixed
# here so the bytes never depend on OpenCV's defaults.
PNG_PARAMS = (cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE)
MANIFEST = "MANIFEST.json"
MIN_HEIGHT = 18         # px; smaller objects are drawn but labelled DontCare
MAX_TRUNCATION = 0.5    # objects leaving the frame more than this are not placed (KITTI Hard's limit)
MAX_COVER = 0.6         # largest box fraction nearer objects may hide, so every labelled object stays visible
SPLIT_STREAM = 1        # spawn key of the split generator, apart from the per-frame generators [seed, i]


@dataclass(frozen=True)
class ClassSpec:
    """freq: share of objects; dims: mean (height, width, length) m; side: probability of a side view;
    lateral: where it stands ("lane" on the road, "walk" on the pavement or crossing, "sit" on the pavement,
    "bike" near the kerb)."""

    freq: float
    dims: tuple[float, float, float]
    side: float
    lateral: str


SPECS = {  # shares roughly follow KITTI's instance counts, with the rare classes boosted so they are learnable
    "Car": ClassSpec(0.48, (1.53, 1.63, 3.88), 0.3, "lane"),
    "Van": ClassSpec(0.09, (2.20, 1.90, 5.00), 0.3, "lane"),
    "Truck": ClassSpec(0.07, (3.30, 2.50, 9.00), 0.35, "lane"),
    "Pedestrian": ClassSpec(0.17, (1.76, 0.66, 0.84), 0.0, "walk"),
    "Cyclist": ClassSpec(0.10, (1.74, 0.60, 1.76), 0.5, "bike"),
    "Person_sitting": ClassSpec(0.02, (1.27, 0.59, 0.80), 1.0, "sit"),
    "Tram": ClassSpec(0.03, (3.50, 2.60, 16.0), 1.0, "lane"),
    "Misc": ClassSpec(0.04, (1.80, 1.60, 3.50), 1.0, "lane"),
}
_NAMES = tuple(SPECS)
_FREQS = np.array([s.freq for s in SPECS.values()]) / sum(s.freq for s in SPECS.values())


@dataclass(frozen=True)
class Placement:
    """One object of a frame before drawing: nominal box (xyxy px, unclipped) and its 3D label fields."""

    name: str
    view: str                               # "rear", "front" or "side"
    flip: bool                              # side view facing left
    box: tuple[float, float, float, float]
    dims: tuple[float, float, float]        # height, width, length, m
    location: tuple[float, float, float]    # bottom centre x, y, z in camera coordinates, m
    rotation_y: float                       # rad, [-pi, pi]
    tiny: bool                              # drawn under MIN_HEIGHT px: a DontCare region


def _rows_below_horizon(rng: np.random.Generator, street: Street, height_m: float, tiny: bool) -> float:
    """Distance d (px) from the horizon to the object's bottom edge. Heights are mostly 40-200 px so objects survive
    the 1/3 letterbox of CPU training, with a 20-40 px tail; tiny objects are 6-16 px."""
    per_px = CAM_HEIGHT / height_m  # rows below the horizon per px of object height
    if tiny:
        return rng.uniform(6.0, MIN_HEIGHT - 2.0) * per_px  # drawn (with jitter) under MIN_HEIGHT
    if rng.random() < 0.25:
        return 20.0 * 2.0 ** rng.random() * per_px
    d_max = min(street.height - street.horizon + 10.0, 320.0 * per_px)
    return rng.uniform(40.0 * per_px, d_max)


def _lateral(rng: np.random.Generator, street: Street, kind: str) -> float:
    """Lateral offset x (m, right positive) of the object's centre for its kind of place."""
    hw, side = street.half_width, 1.0 if rng.random() < 0.5 else -1.0
    if kind == "lane":
        if rng.random() < 0.15:
            return side * (hw - 1.1)  # parked at the kerb
        lane = 2.0 * hw / street.lanes
        return -hw + (int(rng.integers(street.lanes)) + 0.5) * lane + rng.normal(0.0, 0.25)
    near_kerb = rng.random() < 0.7
    if kind in ("walk", "sit"):  # people sitting stay on the pavement
        on_pavement = near_kerb or kind == "sit"
        return side * rng.uniform(hw + 0.3, hw + SIDEWALK) if on_pavement else rng.uniform(-hw, hw)
    return side * rng.uniform(hw - 1.5, hw - 0.3) if near_kerb else rng.uniform(-hw, hw)


def _pose(rng: np.random.Generator, spec: ClassSpec, x: float) -> tuple[str, bool, float]:
    """(view, flip, rotation_y). KITTI: ry = 0 faces +x (right), -pi/2 drives away, +pi/2 comes toward the camera;
    traffic left of the camera is mostly oncoming."""
    if rng.random() < spec.side:
        flip = bool(rng.random() < 0.5)
        return "side", flip, math.remainder((math.pi if flip else 0.0) + rng.normal(0.0, 0.08), math.tau)
    oncoming = rng.random() < (0.8 if x < 0 else 0.2)
    ry = (math.pi / 2 if oncoming else -math.pi / 2) + rng.normal(0.0, 0.08)
    return ("front" if oncoming else "rear"), False, math.remainder(ry, math.tau)


def _sample_draft(rng: np.random.Generator, street: Street, tiny: bool) -> tuple[str, tuple, float]:
    """(class name, dims (h, w, l) m, rows d px from the horizon to the bottom edge) of one object."""
    name = _NAMES[int(rng.choice(len(_NAMES), p=_FREQS))]
    dims = tuple(float(v) for v in np.asarray(SPECS[name].dims) * rng.uniform(0.9, 1.1, 3))
    return name, dims, _rows_below_horizon(rng, street, dims[0], tiny)


def _sample_placement(rng: np.random.Generator, street: Street, name: str, dims: tuple, d: float,
                      tiny: bool) -> Placement:
    """Lateral position and pose of an object of known class, size and depth -> its nominal box and 3D fields."""
    spec = SPECS[name]
    x, z = _lateral(rng, street, spec.lateral), FOCAL * CAM_HEIGHT / d
    view, flip, ry = _pose(rng, spec, x)
    px_per_m = d / CAM_HEIGHT  # = FOCAL / z
    half_w = 0.5 * (dims[2] if view == "side" else dims[1]) * px_per_m
    u, bottom = street.col(x, z), street.horizon + d
    box = (u - half_w, bottom - dims[0] * px_per_m, u + half_w, bottom)
    return Placement(name, view, flip, box, dims, (x, CAM_HEIGHT, z), ry, tiny)


def _clip(box, street: Street) -> tuple[float, float, float, float]:
    return (min(max(box[0], 0), street.width), min(max(box[1], 0), street.height),
            min(max(box[2], 0), street.width), min(max(box[3], 0), street.height))


def _truncation(box, street: Street) -> float:
    """Fraction of the unclipped box area outside the frame."""
    x1, y1, x2, y2 = _clip(box, street)
    return 1.0 - (x2 - x1) * (y2 - y1) / ((box[2] - box[0]) * (box[3] - box[1]))


def _covered(target: Placement, occluders: list[Placement], street: Street) -> float:
    """Fraction of target's in-frame box covered by the union of occluder boxes (2 px raster)."""
    x1, y1, x2, y2 = (int(v) // 2 for v in _clip(target.box, street))
    if x2 <= x1 or y2 <= y1:
        return 1.0
    mask = np.zeros((y2 - y1, x2 - x1), bool)
    for o in occluders:
        a, b, c, d = (int(v) // 2 for v in _clip(o.box, street))
        mask[max(b - y1, 0):max(d - y1, 0), max(a - x1, 0):max(c - x1, 0)] = True
    return float(mask.mean())


def _fits(cand: Placement, placed: list[Placement], street: Street) -> bool:
    """True if adding ``cand`` leaves every object (cand included) at most MAX_COVER hidden by nearer boxes."""
    everyone = placed + [cand]
    for target in everyone:
        if target is not cand and (target.box[2] <= cand.box[0] or cand.box[2] <= target.box[0]
                                   or target.box[3] <= cand.box[1] or cand.box[3] <= target.box[1]):
            continue  # cand does not touch it, so its cover is unchanged
        nearer = [o for o in everyone if o.location[2] < target.location[2]]
        if _covered(target, nearer, street) > MAX_COVER:
            return False
    return True


def _place_objects(rng: np.random.Generator, street: Street) -> list[Placement]:
    """3-15 labelled objects (aiming at 3 + Binomial(12, 0.4); crowded frames place fewer), then 0-3 tiny DontCare
    ones. Class and depth are drawn first and objects placed near to far, retrying only the lateral position, so
    rejections do not bias the height distribution."""
    wanted = 3 + int(rng.binomial(12, 0.4))
    drafts = sorted((_sample_draft(rng, street, tiny=False) for _ in range(wanted)), key=lambda t: -t[2])
    placed = []
    for k in range(wanted + 100):  # past the drafts, extra ones only until 3 are placed
        if k == len(drafts):
            if len(placed) >= 3:
                break
            drafts.append(_sample_draft(rng, street, tiny=False))
        name, dims, d = drafts[k]
        for _ in range(25):
            cand = _sample_placement(rng, street, name, dims, d, tiny=False)
            if _truncation(cand.box, street) <= MAX_TRUNCATION and _fits(cand, placed, street):
                placed.append(cand)
                break
    if len(placed) < 3:
        raise RuntimeError(f"placed only {len(placed)} objects after {len(drafts)} drafts")
    tiny = []
    for _ in range(int(rng.integers(0, 4))):
        draft = _sample_draft(rng, street, tiny=True)
        for _ in range(10):  # a far object hidden behind a labelled one would put a DontCare box on that object
            cand = _sample_placement(rng, street, *draft, tiny=True)
            if _truncation(cand.box, street) <= 0.3 and _covered(cand, placed, street) <= 0.2:
                tiny.append(cand)
                break
    return placed + tiny


def synth_frame(seed: int, index: int) -> tuple[np.ndarray, list[str]]:
    """Frame ``index`` of the dataset of ``seed`` -> ((H, W, 3) uint8 BGR image, KITTI label lines)."""
    rng = np.random.default_rng([seed, index])
    street = sample_street(rng)
    objects = sorted(_place_objects(rng, street), key=lambda o: -o.location[2])  # painter's order: far to near
    image = draw_background(rng, street)
    for o in objects:
        if not o.tiny:
            draw_shadow(image, rng, o.box)
    painter, extents = Painter(image), []
    for k, o in enumerate(objects, start=1):
        painter.begin(k)
        draw_sprite(painter, rng, o.name, o.view, o.box, o.flip)
        extents.append(painter.extent())
    add_noise(rng, image)
    return image, _label_lines(objects, extents, painter.ids, street)


def _num(v: float) -> str:
    return f"{round(v, 2) + 0.0:.2f}"  # + 0.0 turns -0.0 into 0.0, so no "-0.00"


def _label_lines(objects: list[Placement], extents: list, ids: np.ndarray, street: Street) -> list[str]:
    """Objects far to near, then DontCare regions (KITTI's order). extents: (tight xyxy box, pixel count) each."""
    lines, dontcare = [], []
    for k, (o, ((x1, y1, x2, y2), area)) in enumerate(zip(objects, extents), start=1):
        if area == 0:
            raise RuntimeError(f"{o.name} at {o.box} left no pixel in the frame")
        visible = np.count_nonzero(ids[y1:y2, x1:x2] == k) / area
        if o.tiny:
            if visible >= 0.5:  # a far object mostly hidden by a nearer one leaves nothing to mark
                box = _clip((x1 - 2, y1 - 2, x2 + 2, y2 + 2), street)
                dontcare.append("DontCare -1 -1 -10 " + " ".join(map(_num, box)) + " -1 -1 -1 -1000 -1000 -1000 -10")
            continue
        occluded = 0 if visible >= 0.8 else 1 if visible >= 0.5 else 2
        alpha = math.remainder(o.rotation_y - math.atan2(o.location[0], o.location[2]), math.tau)
        values = [alpha, x1, y1, x2, y2, *o.dims, *o.location, o.rotation_y]
        lines.append(" ".join([o.name, _num(_truncation(o.box, street)), str(occluded), *map(_num, values)]))
    return lines + dontcare


def generate(out_dir: str | Path, num: int, seed: int, val_fraction: float = 0.5) -> None:
    """Write ``num`` frames, the train/val split and MANIFEST.json (last) into an empty or new ``out_dir``. A failed
    write (a full disk) removes what this call wrote, so the same command can simply be run again."""
    out = Path(out_dir)
    if num < 2 or not 0.0 < val_fraction < 1.0:
        raise UserError(f"need num >= 2 and 0 < val_fraction < 1 (both splits non-empty), got {num}, {val_fraction}")
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out}: not empty; generate writes a fresh dataset into an empty or new directory (a "
                        f"partial one without {MANIFEST}, left by a killed run, can be removed)")
    existed = out.exists()
    try:
        _write_dataset(out, num, seed, val_fraction)
    except OSError as exc:
        _remove_written(out, existed)
        raise UserError(f"{exc.filename or out}: {exc.strerror or exc} while generating the dataset; nothing of it "
                        f"is left in {out}: free disk space (or fix the folder) and run the command again") from None
    except BaseException:
        _remove_written(out, existed)
        raise


def _remove_written(out: Path, existed: bool) -> None:
    """Undo a failed ``generate``: the folder as it was before (absent, or empty)."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for child in ("training", "ImageSets", MANIFEST):
        path = out / child
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def _write_dataset(out: Path, num: int, seed: int, val_fraction: float) -> None:
    image_dir, label_dir = out / "training" / "image_2", out / "training" / "label_2"
    image_dir.mkdir(parents=True)
    label_dir.mkdir(parents=True)
    for i in range(num):
        image, lines = synth_frame(seed, i)
        ok, png = cv2.imencode(".png", image, list(PNG_PARAMS))
        if not ok:
            raise RuntimeError(f"cv2.imencode failed for frame {i:06d}")
        _write(image_dir / f"{i:06d}.png", png.tobytes())
        _write(label_dir / f"{i:06d}.txt", "".join(line + "\n" for line in lines).encode())
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SPLIT_STREAM,)))
    order = rng.permutation(num)
    n_val = min(num - 1, max(1, round(num * val_fraction)))
    (out / "ImageSets").mkdir()
    for split, ids in (("val", order[:n_val]), ("train", order[n_val:])):
        _write(out / "ImageSets" / f"{split}.txt", "".join(f"{i:06d}\n" for i in sorted(ids)).encode())
    manifest = {"generator": "data.synthetic", "version": GENERATOR_VERSION, "num": num, "seed": seed,
                "val_fraction": val_fraction, **tree_digest(out)}
    # Written last, atomically: a manifest means a complete set (frames and lists are plain writes before it).
    write_text(out / MANIFEST, json.dumps(manifest, indent=1, sort_keys=True))


def _write(path: Path, data: bytes) -> None:
    """A plain write whose error names the file (a failed write() names none)."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None


def tree_digest(root: str | Path) -> dict:
    """{"files": count, "sha256": hex} over every file under ``root`` except the manifest, in sorted path order."""
    root, total, count = Path(root), hashlib.sha256(), 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != MANIFEST):
        total.update(path.relative_to(root).as_posix().encode() + b"\0")
        total.update(hashlib.sha256(path.read_bytes()).digest())
        count += 1
    return {"files": count, "sha256": total.hexdigest()}


def _invalid_reason(root: Path, num: int, seed: int, val_fraction: float) -> str | None:
    """Why ``root`` is not a complete dataset for these arguments, or None when it is."""
    try:
        manifest = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        return f"no readable {MANIFEST} ({exc.__class__.__name__})"
    expected = {"version": GENERATOR_VERSION, "num": num, "seed": seed, "val_fraction": val_fraction}
    wrong = {k: manifest.get(k) for k, v in expected.items() if manifest.get(k) != v}
    if wrong:
        return f"manifest differs from {expected}: {wrong}"
    if tree_digest(root) != {"files": manifest.get("files"), "sha256": manifest.get("sha256")}:
        return "files changed since generation (sha256 mismatch)"
    return None


def ensure_dataset(cache_dir: str | Path, num: int, seed: int, val_fraction: float = 0.5) -> Path:
    """The dataset for (num, seed, val_fraction) under ``cache_dir``, generated on first use and verified (sha256 of
    every file against the manifest) on each later one. A missing, partial or altered copy is regenerated into a
    temporary directory renamed into place, so the final name never holds a half dataset."""
    cache = Path(cache_dir)
    target = cache / f"synthetic_v{GENERATOR_VERSION}_n{num}_s{seed}_val{val_fraction:g}"
    reason = _invalid_reason(target, num, seed, val_fraction)
    if reason is None:
        return target
    LOG.info("generating %s: %s", target, reason)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache))
    try:
        generate(tmp, num, seed, val_fraction)
        if target.exists() and _invalid_reason(target, num, seed, val_fraction) is None:
            shutil.rmtree(tmp)  # another process finished first
            return target
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help)
    parser.add_argument("--out", required=True, help="empty or new directory for the KITTI layout")
    parser.add_argument("--num", type=int, default=400, help="number of frames")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed; frame i uses default_rng([seed, i])")
    parser.add_argument("--val-fraction", type=float, default=0.5, help="share of frames in ImageSets/val.txt")
    return parser


def main(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    generate(args.out, args.num, args.seed, args.val_fraction)
    seconds = time.perf_counter() - start
    print(f"wrote {args.num} frames to {args.out} in {seconds:.1f} s ({args.num / seconds:.1f} frames/s)")


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "data.synthetic"))

"""Class maps: score a model trained on one class list (e.g. darknet's 80 COCO classes) on KITTI's classes.

A map sends some of the model's classes to KITTI classes and drops the rest. It acts on the candidates before NMS:
the score of a KITTI class is the largest score of the model classes sent to it, so the model then behaves like one
trained on the KITTI classes (one NMS per KITTI class, one result line per box and KITTI class).

The built-in ``coco-kitti`` map (``COCO_TO_KITTI``), for models trained on COCO:

| COCO | KITTI | why |
|---|---|---|
| car | Car | COCO's car includes vans; KITTI scores Van detections on Car as neither right nor wrong |
| truck | Truck | |
| person | Pedestrian | also a sitting person (KITTI's Person_sitting is Pedestrian's ignored neighbour) |
| bicycle | Cyclist | COCO boxes the bicycle, KITTI the rider and bicycle together: a lower bound on Cyclist AP |
| train | Tram | COCO's train includes trams |

The other 75 COCO classes have no KITTI counterpart (KITTI labels no bus, motorbike or animal as an object class)
and are dropped; ``describe`` names them. A map file (YAML, ``model class: KITTI class`` per line) gives any other
map; its model classes must exist in the model's names file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor

from data.kitti_labels import KITTI_CLASSES
from utils.errors import UserError

COCO_TO_KITTI = {"car": "Car", "truck": "Truck", "person": "Pedestrian", "bicycle": "Cyclist", "train": "Tram"}
BUILTIN = {"coco-kitti": COCO_TO_KITTI}

# Starting a KITTI head from a COCO model's (training/build.py, --head-init coco-kitti): each KITTI class's rows come
# from the COCO class of the same kind, by its index in darknet's coco.names. Misc has no counterpart (from --seed).
COCO_INDEX = {"person": 0, "bicycle": 1, "car": 2, "train": 6, "truck": 7}
KITTI_FROM_COCO = {"Car": "car", "Van": "car", "Truck": "truck", "Pedestrian": "person", "Person_sitting": "person",
                   "Cyclist": "bicycle", "Tram": "train"}
COCO_NUM_CLASSES = 80


def head_sources(spec: str, classes, source_classes: int) -> tuple[int | None, ...]:
    """For each of ``classes`` (KITTI names), the index of the class of a ``source_classes``-class model whose head
    rows it starts from, or None (initialised from the seed). ``spec``: ``coco-kitti`` (darknet's 80 COCO classes).

    Raises UserError when the source model does not have COCO's 80 classes.
    """
    if spec != "coco-kitti":
        raise UserError(f"head init {spec!r}: the built-in one is coco-kitti")
    if source_classes != COCO_NUM_CLASSES:
        raise UserError(f"--head-init coco-kitti needs --weights of an 80-class COCO model, the file has "
                        f"{source_classes} classes")
    return tuple(COCO_INDEX[KITTI_FROM_COCO[c]] if c in KITTI_FROM_COCO else None for c in classes)


@dataclass(frozen=True)
class ClassMap:
    """A map resolved against a model's class list.

    Attributes:
        name: the built-in name or the file it came from.
        targets: T KITTI class names, in the order the map first names them (the mapped model's class list).
        sources: for each target, the indices of the model classes sent to it.
        pairs: (model class, KITTI class) of every mapped class, in the map's order.
        dropped: the model classes the map sends nowhere, in the model's order.
    """

    name: str
    targets: tuple[str, ...]
    sources: tuple[tuple[int, ...], ...]
    pairs: tuple[tuple[str, str], ...]
    dropped: tuple[str, ...]


def load_class_map(spec: str, model_classes) -> ClassMap:
    """``spec``: a built-in map name (``coco-kitti``) or a YAML file of ``model class: KITTI class`` lines.

    Raises UserError naming the map and the offending class: a model class the model does not have, a target that
    is not a KITTI class, an unreadable file, or a map that keeps no class.
    """
    mapping = BUILTIN[spec] if spec in BUILTIN else _read_map_file(spec)
    model_classes = tuple(model_classes)
    unknown = [name for name in mapping if name not in model_classes]
    if unknown:
        raise UserError(f"{spec}: class(es) {', '.join(map(repr, unknown))} not in the model's classes "
                        f"({', '.join(model_classes[:8])}{', ...' if len(model_classes) > 8 else ''}); map the "
                        "names of the model's names file")
    wrong = [target for target in mapping.values() if target not in KITTI_CLASSES]
    if wrong:
        raise UserError(f"{spec}: {', '.join(map(repr, wrong))} is not a KITTI class (expected one of "
                        f"{', '.join(KITTI_CLASSES)})")
    targets = tuple(dict.fromkeys(mapping.values()))
    sources = tuple(tuple(model_classes.index(s) for s, t in mapping.items() if t == target) for target in targets)
    return ClassMap(spec, targets, sources, tuple(mapping.items()),
                    tuple(c for c in model_classes if c not in mapping))


def _read_map_file(spec: str) -> dict[str, str]:
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{spec}: no such class map file, and not a built-in map (built-in: "
                        f"{', '.join(BUILTIN)})")
    try:
        mapping = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise UserError(f"{path}{f':{mark.line + 1}' if mark else ''}: not valid YAML; a class map is lines of "
                        "'model class: KITTI class'") from None
    if not isinstance(mapping, dict) or not mapping or not all(isinstance(k, str) and isinstance(v, str)
                                                              for k, v in mapping.items()):
        raise UserError(f"{path}: a class map is a non-empty mapping of 'model class: KITTI class' lines")
    return mapping


def map_scores(scores: Tensor, sources: tuple[tuple[int, ...], ...]) -> Tensor:
    """``(..., C)`` model class scores -> ``(..., T)``: target t scores the largest of its source classes."""
    return torch.stack([scores[..., list(idx)].amax(dim=-1) for idx in sources], dim=-1)


def describe(cmap: ClassMap) -> str:
    """One line for the log: what is mapped to what, and which classes are dropped."""
    mapped = ", ".join(f"{s} -> {t}" for s, t in cmap.pairs)
    dropped = (f"; {len(cmap.dropped)} class(es) without a KITTI counterpart dropped: {', '.join(cmap.dropped)}"
               if cmap.dropped else "")
    return f"class map {cmap.name}: {mapped}{dropped}"

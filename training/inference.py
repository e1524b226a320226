"""Models loaded for inference (eval.py, detect.py, the benchmarks that score trained runs): a checkpoint of this
repo, assembled by the one builder (training/build.py) from the config it carries, or a darknet ``.weights`` file
with its ``.cfg`` and a names file.

It sits on the training floor because a checkpoint's config (training/config.py) decides how its model is built,
fed and scored.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from evaluation.class_map import describe, load_class_map
from evaluation.predict import PredictSettings
from models.build import build_model
from models.cfg import parse_cfg
from models.darknet import Darknet
from models.weights import load_darknet_weights
from training import build
from training.config import TrainConfig
from utils.determinism import upsample_kind
from utils.errors import UserError


@dataclass(frozen=True)
class Inference:
    """A model ready for eval.py and detect.py, with how to run it and the data it was trained on (if known)."""

    model: Darknet
    device: torch.device
    settings: PredictSettings
    classes: tuple[str, ...]
    data: Path | None  # KITTI root: --data, else the run's (checkpoints only)
    split: str  # default evaluation split


def load(weights: str, darknet_cfg: str | None = None, names: str | None = None, data: str | None = None,
         device: str | None = None, class_map: str | None = None, log=print, **settings) -> Inference:
    """A checkpoint of this repo (its config gives everything), or a darknet ``.weights`` file with its ``.cfg``
    and a names file (one class name per line, e.g. the COCO yolov3), run in strict mode and fed as darknet feeds
    it (data.transforms.letterbox_darknet).

    class_map: a built-in map name or map file (evaluation/class_map.py): the model is scored on the map's KITTI
        classes, and what is mapped and dropped is logged.
    ``settings``: non-None PredictSettings overrides (conf_thres, iou_thres, max_det, size).
    """
    settings = {k: v for k, v in settings.items() if v is not None}
    darknet_only = [flag for flag, given in (("--cfg", darknet_cfg), ("--names", names)) if given]
    if darknet_only and not weights.endswith(".weights"):
        raise UserError(f"{', '.join(darknet_only)}: for darknet .weights files; {weights} is a checkpoint of this "
                        "repo, which carries its own model and classes: leave them out")
    if not weights.endswith(".weights"):
        size = settings.pop("size", None)
        net, cfg, dev, _ = build.from_checkpoint(weights, data=data, device=device, eval_size=size, **settings)
        run = Inference(net.eval(), dev, build.predict_settings(cfg), tuple(cfg.classes), build.dataset_root(cfg),
                        cfg.val_split)
    else:
        run = _darknet(weights, darknet_cfg, names, data, device, settings)
    if class_map is None:
        return run
    cmap = load_class_map(class_map, run.classes)
    log(describe(cmap))
    return dataclasses.replace(run, classes=cmap.targets,
                               settings=dataclasses.replace(run.settings, class_sources=cmap.sources))


# A darknet file carries no config: its process runs in strict mode with seed 0 and TrainConfig's other defaults.
DARKNET_PROCESS = dataclasses.replace(TrainConfig(), determinism="strict", seed=0)


def _darknet(weights: str, darknet_cfg: str | None, names: str | None, data: str | None, device: str | None,
             settings: dict) -> Inference:
    if not darknet_cfg or not names:
        raise UserError(f"{weights}: a darknet .weights file needs its --cfg and a --names file of class names")
    # "traffic light" -> "traffic_light" (as KITTI's Person_sitting): a result line must keep its 16 fields
    classes = tuple("_".join(line.split()) for line in Path(names).read_text().splitlines() if line.strip())
    declared = {b.get("classes") for b in parse_cfg(darknet_cfg) if b.type == "yolo"}
    if declared != {len(classes)}:
        raise UserError(f"{names}: {len(classes)} class names, but {darknet_cfg} declares classes={declared}")
    _, dev = build.process(DARKNET_PROCESS, device)
    net = build_model(darknet_cfg, len(classes), upsample_kind(DARKNET_PROCESS.determinism), dev, init="pytorch")
    load_darknet_weights(net, weights)
    return Inference(net.eval(), dev, PredictSettings(**{"size": net.input_size, "letterbox": "darknet", **settings}),
                     classes, Path(data) if data else None, "val")

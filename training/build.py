"""The one builder: what every entry point needs, made from a TrainConfig.

train.py (through the Trainer), eval.py, detect.py, the determinism audit and every benchmark get their process
set-up, datasets, model, loaders and evaluation settings here, so a change to how a run is assembled reaches all of
them at once.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from data.kitti import KittiDataset
from data.loader import build_train_loader
from evaluation.class_map import describe, load_class_map
from evaluation.predict import PredictSettings
from models.build import build_model, load_model_state
from models.cfg import parse_cfg
from models.darknet import Darknet
from models.layers import ConvBNAct
from models.weights import FileFit, fit_file, load_darknet_weights
from training import checkpoint
from training.config import (
    TrainConfig,
    augment_config,
    from_dict,
    source_seed,
    validate,
    with_file_hashes,
)
from utils import seed
from utils.distributed import Dist
from utils.environment import REPO, select_device
from utils.errors import UserError


def process(cfg: TrainConfig, device: str | None = None) -> tuple[dict, torch.device]:
    """Apply the determinism mode (first: before CUDA starts), pick the device. Returns (switches, device)."""
    switches = seed.configure(cfg.determinism, cfg.seed, cfg.threads, cfg.fill_uninitialized_memory)
    return switches, select_device(device or cfg.device)


def dataset_root(cfg: TrainConfig) -> Path:
    """--data, or the embedded synthetic set (generated once into the cache, reused while valid)."""
    if cfg.data:
        return Path(cfg.data)
    from data.synthetic import ensure_dataset
    cache = Path(cfg.synthetic_cache)
    if not cache.is_absolute():
        cache = REPO / cache
    return ensure_dataset(cache, cfg.synthetic_num, cfg.synthetic_seed)


def dataset(cfg: TrainConfig, split: str, cache: str | None = None) -> KittiDataset:
    """One split of the run's data (``cache`` overrides the config's)."""
    return KittiDataset(dataset_root(cfg), split, classes=cfg.classes, bad_labels=cfg.bad_labels,
                        cache=cfg.cache if cache is None else cache)


def datasets(cfg: TrainConfig) -> tuple[KittiDataset, KittiDataset]:
    """(train, val) splits of the run's data; frames in both are an error unless --allow-split-overlap."""
    train, val = dataset(cfg, cfg.train_split), dataset(cfg, cfg.val_split)
    shared = sorted(set(train.ids) & set(val.ids))
    if shared and not cfg.allow_split_overlap:
        raise UserError(f"{train.split_file} and {val.split_file} share {len(shared)} of {len(val)} val frames "
                        f"(first: {shared[0]}): validating on training frames measures memory, not detection; fix "
                        "the splits, or pass --allow-split-overlap true to do it on purpose")
    return train, val


def model(cfg: TrainConfig, device: torch.device) -> Darknet:
    """The model, initialised from the global torch RNG seeded here with the init seed, its anchors at the config's
    input size."""
    seed.seed_model_init(source_seed(cfg, "init"))
    return build_model(cfg.model, len(cfg.classes), seed.upsample_kind(cfg.determinism), device, cfg.channels_last,
                       input_size=tuple(cfg.img_size), init=cfg.init)


def initial_weights(net: Darknet, cfg: TrainConfig) -> str:
    """Load --weights into ``net``: a darknet .weights file (all layers, the prefix its size or --weights-cutoff
    gives, or a whole model of the same cfg with another class count) or a .pt checkpoint of this repo (its model
    state). Returns what was loaded, for the log."""
    path = cfg.weights
    if path.endswith(".pt"):
        return load_model_state(net, checkpoint.load(path)["model"], path)
    fit = FileFit(cfg.weights_cutoff, net.num_classes) if cfg.weights_cutoff else fit_file(net, path)
    if fit.num_classes != net.num_classes:
        return _other_classes(net, path, fit.num_classes)
    convs = sum(isinstance(layer, ConvBNAct) for layer in list(net.module_list)[:fit.cutoff])
    if convs == 0:  # a header alone (or a cutoff before the first convolution) would train from scratch
        raise UserError(f"{path}: loads no layer of {cfg.model} (0 convolutions: the file holds darknet's header "
                        "and no layer weights); give the .weights file of this cfg or its backbone, or leave out "
                        "--weights to train from --seed")
    load_darknet_weights(net, path, fit.cutoff)
    rest = len(net.module_list) - fit.cutoff
    return (f"loaded layers 0-{fit.cutoff - 1} ({convs} convolutions) from {path}"
            + (f"; layers {fit.cutoff}-{len(net.module_list) - 1} initialised from --seed ({cfg.init})" if rest
               else ""))


def _other_classes(net: Darknet, path: str, num_classes: int) -> str:
    """A whole darknet model of ``net``'s cfg trained on ``num_classes`` classes (e.g. COCO's 80): every layer but
    the convolutions feeding a [yolo] block is copied into ``net``; those stay as initialised from --seed."""
    with torch.random.fork_rng(devices=[]):  # the file's model is a vessel: its own init must not draw from --seed
        source = Darknet(net.cfg_path, num_classes=num_classes)
    load_darknet_weights(source, path)
    return load_model_state(net, source.state_dict(), f"{path} ({num_classes} classes)")


@dataclass(frozen=True)
class Inference:
    """A model ready for eval.py and detect.py, with how to run it and the data it was trained on (if known)."""

    model: Darknet
    device: torch.device
    settings: PredictSettings
    classes: tuple[str, ...]
    data: Path | None  # KITTI root: --data, else the run's (checkpoints only)
    split: str  # default evaluation split


def for_inference(weights: str, darknet_cfg: str | None = None, names: str | None = None, data: str | None = None,
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
        net, cfg, dev, _ = from_checkpoint(weights, data=data, device=device, eval_size=size, **settings)
        run = Inference(net.eval(), dev, predict_settings(cfg), tuple(cfg.classes), dataset_root(cfg),
                        cfg.val_split)
    else:
        run = _darknet_inference(weights, darknet_cfg, names, data, device, settings)
    if class_map is None:
        return run
    cmap = load_class_map(class_map, run.classes)
    log(describe(cmap))
    return dataclasses.replace(run, classes=cmap.targets,
                               settings=dataclasses.replace(run.settings, class_sources=cmap.sources))


def _darknet_inference(weights: str, darknet_cfg: str | None, names: str | None, data: str | None,
                       device: str | None, settings: dict) -> Inference:
    if not darknet_cfg or not names:
        raise UserError(f"{weights}: a darknet .weights file needs its --cfg and a --names file of class names")
    # "traffic light" -> "traffic_light" (as KITTI's Person_sitting): a result line must keep its 16 fields
    classes = tuple("_".join(line.split()) for line in Path(names).read_text().splitlines() if line.strip())
    declared = {b.get("classes") for b in parse_cfg(darknet_cfg) if b.type == "yolo"}
    if declared != {len(classes)}:
        raise UserError(f"{names}: {len(classes)} class names, but {darknet_cfg} declares classes={declared}")
    seed.configure("strict", 0, TrainConfig.threads)
    dev = select_device(device or "auto")
    net = build_model(darknet_cfg, len(classes), "deterministic", dev, init="pytorch")
    load_darknet_weights(net, weights)
    return Inference(net.eval(), dev, PredictSettings(**{"size": net.input_size, "letterbox": "darknet", **settings}),
                     classes, Path(data) if data else None, "val")


def train_loader(cfg: TrainConfig, data: KittiDataset, epoch: int, start_batch: int, dist: Dist = Dist(),
                 persistent_workers: bool = False):
    """Training batches of one rank for ``epoch``, from global batch ``start_batch`` on."""
    return build_train_loader(
        data, seed=source_seed(cfg, "order"), aug_seed=source_seed(cfg, "aug"), batch_size=cfg.batch_size,
        base_size=tuple(cfg.img_size), workers=cfg.workers,
        epoch=epoch, start_batch=start_batch, rank=dist.rank, world_size=dist.world_size,
        persistent_workers=persistent_workers, multiscale=cfg.multiscale, scale_every=cfg.scale_every,
        aug=augment_config(cfg), aug_rng=seed.augmentation_rng(cfg.determinism), accumulate=cfg.accumulate)


def steps_per_epoch(cfg: TrainConfig, data: KittiDataset, dist: Dist = Dist()) -> int:
    """Optimizer steps in one epoch."""
    return len(train_loader(cfg, data, 0, 0, dist)) // cfg.accumulate


def predict_settings(cfg: TrainConfig) -> PredictSettings:
    """How evaluation and detection run the model of this config."""
    return PredictSettings(size=tuple(cfg.eval_size or cfg.img_size), batch_size=cfg.batch_size, workers=cfg.workers,
                           conf_thres=cfg.conf_thres, iou_thres=cfg.iou_thres, max_det=cfg.max_det, amp=cfg.amp == "on",
                           channels_last=cfg.channels_last)


def from_checkpoint(path: str | Path, **overrides) -> tuple[Darknet, TrainConfig, torch.device, dict]:
    """A checkpoint's model (its weights loaded, train mode) and config with the non-None ``overrides`` applied,
    in the process set-up of its determinism mode. Returns (model, config, device, checkpoint dict)."""
    ckpt = checkpoint.load(path)
    cfg = with_file_hashes(validate(dataclasses.replace(from_dict(ckpt["config"]),
                                                        **{k: v for k, v in overrides.items() if v is not None})))
    _, device = process(cfg)
    net = model(cfg, device)
    checkpoint.check_model_state(path, ckpt["model"], net.state_dict())
    net.load_state_dict(ckpt["model"])
    return net, cfg, device, ckpt

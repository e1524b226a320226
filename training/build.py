"""The one builder: what every entry point needs, made from a TrainConfig.

train.py (through the Trainer), inference (training/inference.py, for eval.py and detect.py), the determinism audit
and every benchmark get their process set-up, datasets, model, loaders and evaluation settings here, so a change to
how a run is assembled reaches all of them at once.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from data.identity import DataIdentity, dataset_files, first_difference, identify, read_manifest
from data.kitti import KittiDataset
from data.loader import TrainLoader, build_train_loader
from evaluation.class_map import KITTI_FROM_COCO, head_sources
from evaluation.predict import PredictSettings
from models.build import build_model, copy_head_rows, load_model_state
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
from utils import determinism
from utils.distributed import Dist
from utils.environment import REPO, select_device
from utils.errors import UserError
from utils.file_hashes import FileHashCache

FILE_HASH_CACHE = REPO / ".cache" / "file_sha256.json"  # outside every data folder (those may be read-only)


def process(cfg: TrainConfig, device: str | None = None) -> tuple[dict, torch.device]:
    """Apply the determinism mode (first: before CUDA starts), pick the device. Returns (switches, device)."""
    switches = determinism.configure(cfg.determinism, cfg.seed, cfg.threads,
                                     fill_uninitialized_memory=cfg.fill_uninitialized_memory)
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


def data_identity(train: KittiDataset, val: KittiDataset) -> DataIdentity:
    """What the run reads (data/identity.py), each file hashed once per size and mtime (cache: FILE_HASH_CACHE)."""
    return identify(train.root, dataset_files(train, val), FileHashCache(FILE_HASH_CACHE))


def with_data_identity(cfg: TrainConfig, identity: DataIdentity, recorded_manifest: Path | None = None
                       ) -> TrainConfig:
    """``cfg`` with its data's sha256. A different one recorded (a checkpoint's config, a run's config.yaml used as
    preset) means the data changed since: refused, naming the first differing file when ``recorded_manifest``
    (the run's data_manifest.tsv) exists."""
    recorded = cfg.data_sha256
    if recorded and recorded != identity.sha256:
        where = recorded_manifest if recorded_manifest and recorded_manifest.is_file() else None
        first = first_difference(read_manifest(where), identity.rows, "recorded", "now") if where else None
        raise UserError(f"{where or cfg.data or 'the synthetic set'}: the data changed since this run was configured"
                        f"{': ' + first if first else ''} (data_sha256 {recorded[:12]}... recorded, "
                        f"{identity.sha256[:12]}... now); a run is defined by its data's bytes: restore the data, "
                        "or start a new run on it (from a preset: delete its data_sha256 line)")
    return dataclasses.replace(cfg, data_sha256=identity.sha256)


def model(cfg: TrainConfig, device: torch.device) -> Darknet:
    """The model, initialised from the global torch RNG seeded here with the init seed, its anchors at the config's
    input size."""
    determinism.seed_model_init(source_seed(cfg, "init"))
    return build_model(cfg.model, len(cfg.classes), determinism.upsample_kind(cfg.determinism), device,
                       cfg.channels_last, input_size=tuple(cfg.img_size), init=cfg.init)


def initial_weights(net: Darknet, cfg: TrainConfig) -> str:
    """Load --weights into ``net``: a darknet .weights file (all layers, the prefix its size or --weights-cutoff
    gives, or a whole model of the same cfg with another class count) or a .pt checkpoint of this repo (its model
    state). Returns what was loaded, for the log."""
    path = cfg.weights
    if path.endswith(".pt"):
        if cfg.head_init != "none":
            raise UserError(f"--head-init {cfg.head_init}: {path} is a checkpoint of this repo; head rows are mapped "
                            "only from a darknet .weights model of another class list (e.g. COCO's 80)")
        return load_model_state(net, checkpoint.load(path)["model"], path)
    fit = FileFit(cfg.weights_cutoff, net.num_classes) if cfg.weights_cutoff else fit_file(net, path)
    if fit.num_classes != net.num_classes:
        return _other_classes(net, path, fit.num_classes, cfg)
    if cfg.head_init != "none":
        raise UserError(f"--head-init {cfg.head_init}: {path} has the model's own {net.num_classes} classes; "
                        "head rows are mapped only from a whole model of another class list (e.g. COCO's 80)")
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


def _other_classes(net: Darknet, path: str, num_classes: int, cfg: TrainConfig) -> str:
    """A whole darknet model of ``net``'s cfg trained on ``num_classes`` classes (e.g. COCO's 80): every layer but
    the convolutions feeding a [yolo] block is copied into ``net``; those stay as initialised from --seed, or with
    --head-init start from the file's rows of the corresponding classes (box and objectness rows as they are)."""
    with torch.random.fork_rng(devices=[]):  # the file's model is a vessel: its own init must not draw from --seed
        source = Darknet(net.cfg_path, num_classes=num_classes)
    load_darknet_weights(source, path)
    if cfg.head_init == "none":
        return load_model_state(net, source.state_dict(), f"{path} ({num_classes} classes)")
    sources = head_sources(cfg.head_init, cfg.classes, num_classes)
    mapped = ", ".join(f"{c} <- {KITTI_FROM_COCO[c]}" for c, s in zip(cfg.classes, sources) if s is not None)
    unmapped = [c for c, s in zip(cfg.classes, sources) if s is None]
    note = (f"started from the file's: box and objectness rows as they are, class rows {cfg.head_init} ({mapped})"
            + (f", {', '.join(unmapped)} from --seed" if unmapped else ""))
    loaded = load_model_state(net, source.state_dict(), f"{path} ({num_classes} classes)", heads_left=note)
    copy_head_rows(net, source, sources)
    return loaded


def train_loader(cfg: TrainConfig, data: KittiDataset, epoch: int = 0, start_batch: int = 0, dist: Dist = Dist(),
                 persistent_workers: bool = False) -> TrainLoader:
    """Training batches of one rank, from global batch ``start_batch`` of ``epoch`` on; ``set_epoch`` moves it on
    (data.loader.TrainLoader)."""
    return build_train_loader(
        data, seed=source_seed(cfg, "order"), aug_seed=source_seed(cfg, "aug"), batch_size=cfg.batch_size,
        base_size=tuple(cfg.img_size), workers=cfg.workers,
        epoch=epoch, start_batch=start_batch, rank=dist.rank, world_size=dist.world_size,
        persistent_workers=persistent_workers, multiscale=cfg.multiscale, scale_every=cfg.scale_every,
        aug=augment_config(cfg), aug_rng=determinism.augmentation_rng(cfg.determinism), accumulate=cfg.accumulate)


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

"""The one builder: what every entry point needs, made from a TrainConfig.

train.py (through the Trainer), eval.py, detect.py, the determinism audit and every benchmark get their process
set-up, datasets, model, loaders and evaluation settings here, so a change to how a run is assembled reaches all of
them at once.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from data.kitti import KittiDataset
from data.loader import build_train_loader
from data.transforms import AugmentConfig
from evaluation.predict import PredictSettings
from models.build import build_model
from models.darknet import Darknet
from training import checkpoint
from training.config import TrainConfig, from_dict, validate, with_file_hashes
from utils import seed
from utils.distributed import Dist
from utils.environment import REPO, select_device
from utils.errors import UserError


def process(cfg: TrainConfig, device: str | None = None) -> tuple[dict, torch.device]:
    """Apply the determinism mode (first: before CUDA starts), pick the device. Returns (switches, device)."""
    switches = seed.configure(cfg.determinism, cfg.seed, cfg.threads, cfg.fill_uninitialized_memory)
    dev = select_device(device or cfg.device)
    if cfg.amp and dev.type != "cuda":
        raise UserError("--amp (bf16 autocast) is for CUDA; this run is on the CPU")
    return switches, dev


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
    """The model, initialised from the global torch RNG (seeded by ``process`` before this is called)."""
    return build_model(cfg.model, len(cfg.classes), seed.upsample_kind(cfg.determinism), device, cfg.channels_last)


def train_loader(cfg: TrainConfig, data: KittiDataset, epoch: int, start_batch: int, dist: Dist = Dist(),
                 persistent_workers: bool = False):
    """Training batches of one rank for ``epoch``, from global batch ``start_batch`` on."""
    return build_train_loader(
        data, seed=cfg.seed, batch_size=cfg.batch_size, base_size=tuple(cfg.img_size), workers=cfg.workers,
        epoch=epoch, start_batch=start_batch, rank=dist.rank, world_size=dist.world_size,
        persistent_workers=persistent_workers, multiscale=cfg.multiscale, scale_every=cfg.scale_every,
        aug=AugmentConfig(flip_p=cfg.flip_p, hsv=tuple(cfg.hsv)), aug_rng=seed.augmentation_rng(cfg.determinism))


def steps_per_epoch(cfg: TrainConfig, data: KittiDataset, dist: Dist = Dist()) -> int:
    """Optimizer steps in one epoch."""
    return len(train_loader(cfg, data, 0, 0, dist)) // cfg.accumulate


def predict_settings(cfg: TrainConfig) -> PredictSettings:
    """How evaluation and detection run the model of this config."""
    return PredictSettings(size=tuple(cfg.eval_size or cfg.img_size), batch_size=cfg.batch_size, workers=cfg.workers,
                           conf_thres=cfg.conf_thres, iou_thres=cfg.iou_thres, max_det=cfg.max_det, amp=cfg.amp,
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

"""The training configuration: one frozen dataclass, every default commented, loaded from a YAML preset and flags.

Resolution order: dataclass defaults < ``--config cfg/NAME.yaml`` (only the keys that differ) < command-line flags.
Unknown keys and wrong types raise. The resolved config is printed, saved to ``config.yaml`` and checkpointed.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from data.kitti_labels import KITTI_CLASSES
from data.transforms import AugmentConfig, check_input_size
from training import ranges
from utils.errors import UserError


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class TrainConfig:
    # model
    model: str = _f("cfg/yolov3-small-kitti.cfg", "darknet .cfg describing the architecture")
    model_file_sha256: str = _f("", "sha256 of the --model file, recorded when the config is resolved: a run is "
                                    "defined by the file's content, not its name", derived=True)
    weights: str = _f("", "initial weights: a darknet .weights file (whole model, or a backbone prefix such as "
                          "darknet53.conv.74) or a .pt of this repo (its model state; a new run with a new "
                          "recipe); empty: initialised from --seed")
    weights_cutoff: int = _f(0, "darknet .weights: the file holds layers [0, N) (0: found from the file's size)")
    weights_file_sha256: str = _f("", "sha256 of the --weights file, recorded when the config is resolved",
                                  derived=True)
    head_init: str = _f("none", "with --weights of a whole model of another class list: coco-kitti starts each KITTI "
                                "class's detection-head rows from darknet's COCO class of the same kind (Car, Van "
                                "<- car; Truck <- truck; Pedestrian, Person_sitting <- person; Cyclist <- bicycle; "
                                "Tram <- train; Misc from --seed) and the box and objectness rows from the file, so "
                                "fine-tuning starts where the COCO model stands; none: the heads from --seed",
                        choices=("none", "coco-kitti"))
    init: str = _f("darknet", "initialisation of the layers --weights does not cover: darknet (He-normal "
                              "sqrt(2/fan_in), zero biases) or pytorch (PyTorch's defaults)",
                   choices=("darknet", "pytorch"))
    box_loss: str = _f("darknet", "darknet: box gradients equal darknet's deltas; sigmoid_l2 (for an ablation "
                                  "only, benchmarks/stability.py): squared error on sigmoid(tx, ty) and (tw, th)",
                       choices=("darknet", "sigmoid_l2"))
    obj_norm: str = _f("sum", "objectness normalisation: sum (darknet's: grows with the input area) or cells (for an "
                              "ablation only, benchmarks/stability.py: scaled to 416x128's cell count, a "
                              "size-independent objectness)",
                       choices=("sum", "cells"))
    # data
    data: str = _f("", "KITTI root (training/image_2, training/label_2, ImageSets); empty: the embedded "
                       "synthetic KITTI-format set, generated once into --synthetic-cache")
    synthetic_num: int = _f(640, "frames in the embedded synthetic set (half train, half val)")
    synthetic_seed: int = _f(0, "seed of the embedded synthetic set (fixed, independent of --seed)")
    synthetic_cache: str = _f(".cache/synthetic", "where the embedded synthetic set is generated")
    train_split: str = _f("train", "split name (ImageSets/NAME.txt) or path to an id list")
    val_split: str = _f("val", "split used for evaluation")
    allow_split_overlap: bool = _f(False, "allow frames in both splits (e.g. to measure overfitting); else an error")
    classes: tuple = _f(KITTI_CLASSES, "trained classes, comma-separated; other KITTI classes are ignore regions")
    bad_labels: str = _f("error", "bad label lines: 'error' stops with file:line, 'skip' logs and counts them",
                         choices=("error", "skip"))
    cache: str = _f("ram", "'ram' keeps decoded frames in memory (PNG decoding dominates a CPU step)",
                    choices=("none", "ram"))
    data_sha256: str = _f("", "sha256 of the manifest of every file the run reads (split lists, images, labels; "
                              "data/identity.py, data_manifest.tsv in the run directory), recorded when training "
                              "starts: a run is defined by its data's bytes", derived=True)
    # input and augmentation
    img_size: tuple = _f((416, 128), "network input W,H in pixels, multiples of 32 (KITTI is ~3.3:1)")
    multiscale: bool = _f(True, "draw the input size per block of batches from 0.75x-1.25x of --img-size")
    scale_every: int = _f(10, "batches per multi-scale block")
    flip_p: float = _f(0.5, "horizontal flip probability")
    hsv: tuple = _f((0.0, 0.0, 0.0), "HSV jitter gains h,s,v (0 disables)")
    scale: tuple = _f((1.0, 1.0), "zoom jitter about the input centre, drawn from U(lo,hi) per image (1,1 disables)")
    translate: float = _f(0.0, "shift jitter, drawn from U(-t,t) times the input width and height (0 disables)")
    # optimisation
    epochs: int = _f(60, "training epochs")
    batch_size: int = _f(8, "images per optimizer step per process (before accumulation)")
    accumulate: int = _f(1, "batches accumulated per optimizer step")
    lr: float = _f(0.002, "peak learning rate (SGD), reached after burn-in")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(5e-4, "SGD weight decay on conv weights (not on BN or biases)")
    burn_in_images: int = _f(800, "darknet burn-in, counted in training images (the same at any batch size, "
                                  "accumulation or world size): lr * (images seen / burn_in_images) ** 4")
    schedule: str = _f("cosine", "decay after burn-in", choices=("cosine", "step"))
    lr_steps: tuple = _f((0.8, 0.9), "step schedule: fractions of training where lr is multiplied by 0.1")
    lr_final: float = _f(0.05, "cosine schedule: final lr as a fraction of --lr")
    # reproducibility and hardware
    seed: int = _f(202003, "run seed: weights init, shuffling, augmentation")
    seed_init: int = _f(-1, "seed of the weight initialisation alone (-1: --seed)")
    seed_order: int = _f(-1, "seed of the epochs' sample order alone (-1: --seed)")
    seed_aug: int = _f(-1, "seed of the augmentation draws and multi-scale sizes alone (-1: --seed)")
    determinism: str = _f("strict", "strict: bit-reproducible; reference: the reference post's recipe; "
                                    "off: cuDNN benchmark, no deterministic algorithms",
                          choices=("strict", "reference", "off"))
    fill_uninitialized_memory: bool = _f(False, "strict mode: fill torch.empty's memory (off: faster, and the same "
                                                "bits wherever measured; tests compare both)")
    threads: int = _f(2, "torch CPU threads (fixed: the thread count is part of the CPU reproducibility key)")
    device: str = _f("auto", "auto (cuda when available), cpu or cuda", choices=("auto", "cpu", "cuda"))
    amp: str = _f("auto", "bf16 autocast: on, off, or auto (on for CUDA and for CPUs with native bf16, AVX-512 BF16 "
                          "or AMX; resolved when the config is, so config.yaml records the choice)",
                  choices=("auto", "on", "off"))
    channels_last: bool = _f(True, "channels_last memory format (faster convolutions on GPUs and on CPUs)")
    workers: int = _f(0, "DataLoader worker processes (results do not depend on it); 0 suits the RAM cache on 2 cores")
    # evaluation
    eval_every: int = _f(20, "evaluate on --val-split every E epochs and at the end (0: only at the end)")
    eval_size: tuple = _f((), "evaluation input W,H (empty: --img-size)")
    conf_thres: float = _f(0.005, "evaluation: minimum score kept before NMS")
    iou_thres: float = _f(0.45, "evaluation: NMS IoU threshold")
    max_det: int = _f(100, "evaluation: detections kept per frame")
    # run bookkeeping
    checkpoint_every: int = _f(0, "also write last.pt every N optimizer steps (0: only at epoch ends)")
    checkpoint_epochs: int = _f(1, "write last.pt at the end of every N-th epoch (and of the last one)")
    fingerprint_every: int = _f(10, "hash the parameters into metrics.jsonl every N optimizer steps")
    max_steps: int = _f(0, "stop after N optimizer steps of this invocation, with last.pt written; not part of the "
                           "run: --resume continues to the same final bits (0: train to --epochs)")


# Keys that may differ between runs (or between a checkpoint and its resumption) without changing what is computed.
OPERATIONAL_KEYS = ("workers", "cache", "max_steps", "checkpoint_every", "checkpoint_epochs", "eval_every",
                    "device")
# Keys that name the files a run reads: changing one drops a recorded data_sha256 (training/build.py checks it).
DATA_KEYS = ("data", "synthetic_num", "synthetic_seed", "train_split", "val_split")
TUPLE_TYPES = {"classes": str, "img_size": int, "hsv": float, "scale": float, "lr_steps": float, "eval_size": int}


NON_EMPTY = ("model", "synthetic_cache", "train_split", "val_split")  # str keys whose empty value means nothing


def parse_value(name: str, value, where: str):
    """Cast a YAML or command-line value to the field's type and check its range (training/ranges.py); raise
    UserError naming ``where`` otherwise. A boolean is not a number and an empty value is not a value."""
    fld = {f.name: f for f in dataclasses.fields(TrainConfig)}[name]
    kind = TUPLE_TYPES.get(name)
    if value is None or (name in NON_EMPTY and str(value).strip() == ""):
        raise UserError(f"{where}: {name} is empty; give it a value, or leave the key out for its default "
                        f"({to_dict(TrainConfig())[name]!r})")
    try:
        if kind is not None:
            items = value.replace("x", ",").split(",") if isinstance(value, str) else list(value)
            out = tuple(_cast(kind, v.strip() if isinstance(v, str) else v) for v in items if str(v).strip())
        elif fld.type == "bool":
            out = _parse_bool(value)
        else:
            out = _cast({"int": int, "float": float, "str": str}[fld.type], value)
    except (TypeError, ValueError):
        raise UserError(f"{where}: {name} expects {fld.type if kind is None else 'a list of ' + kind.__name__}, "
                         f"got {value!r}") from None
    choices = fld.metadata.get("choices")
    if choices and {"on", "off"} <= set(choices) and out not in choices:
        try:  # YAML reads on/off/true/false as booleans; true/false/1/0 on the command line mean the same
            out = "on" if _parse_bool(value) else "off"
        except ValueError:
            pass
    if choices and out not in choices:
        raise UserError(f"{where}: {name} must be one of {', '.join(choices)}, got {out!r}")
    return ranges.check(name, out, where)


def _cast(kind, value):
    """``kind(value)`` for a YAML or command-line value; YAML's true/false are no numbers, 2.5 is no int."""
    if isinstance(value, bool) and kind is not str:
        raise ValueError(value)
    if kind is int and isinstance(value, float) and value != int(value):
        raise ValueError(value)
    return kind(value)


def _parse_bool(value) -> bool:
    if isinstance(value, bool):
        return value
    if str(value).lower() in ("1", "true", "yes", "on"):
        return True
    if str(value).lower() in ("0", "false", "no", "off"):
        return False
    raise UserError(value)


def load_yaml(path: str | Path) -> dict:
    """A preset: a mapping of TrainConfig keys (safe_load only: a config never executes code)."""
    with open(path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise UserError(f"{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}); a preset is "
                            "lines of 'key: value'") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path}: expected a mapping of config keys, got {type(raw).__name__}")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise UserError(f"{path}: unknown config key(s) {', '.join(unknown)}")
    return {k: parse_value(k, v, str(path)) for k, v in raw.items()}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per config field, documented with its default; unset flags stay None (= not overriding)."""
    for f in dataclasses.fields(TrainConfig):
        if f.metadata.get("derived"):
            continue
        default = f.default if not isinstance(f.default, tuple) else ",".join(map(str, f.default))
        meta = f.metadata
        span = ranges.describe(f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=f.type.upper(),
                            help=f"{meta['help']} (default: {default}{'; ' + span if span else ''})")


def resolve(args: argparse.Namespace, preset: str | None = None, base: TrainConfig | None = None) -> TrainConfig:
    """Defaults (or ``base``) < preset YAML < flags given on the command line, then the files' hashes.

    A hash recorded by ``base`` or the preset (a checkpoint's config, a repeat grid's run) must match the file as it
    is now; a flag that names another file drops it.
    """
    values = dataclasses.asdict(base) if base is not None else {}
    values.update(load_yaml(preset) if preset else {})
    recorded = dict(values)
    for f in dataclasses.fields(TrainConfig):
        given = getattr(args, f.name, None)
        if given is not None:
            values[f.name] = parse_value(f.name, given, "--" + f.name.replace("_", "-"))
    for key in ("model", "weights"):
        if values.get(key) != recorded.get(key):
            values.pop(f"{key}_file_sha256", None)
    if any(values.get(key) != recorded.get(key) for key in DATA_KEYS):
        values.pop("data_sha256", None)  # other data named: the recorded identity is not this data's
    return with_file_hashes(validate(TrainConfig(**values)))


def file_sha256(path: str | Path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def with_file_hashes(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` with the sha256 of its model and weights files; a different recorded hash means the file changed
    since the run was configured: refused."""
    hashes = {}
    for key, what in (("model", "model cfg"), ("weights", "initial weights file")):
        path, recorded = getattr(cfg, key), getattr(cfg, f"{key}_file_sha256")
        actual = file_sha256(path) if path else ""
        if recorded and recorded != actual:
            raise UserError(f"{path or '--' + key}: the {what} changed since this run was configured (sha256 "
                            f"{recorded[:12]}... recorded, {actual[:12] or 'no file'}... now); a run is defined by "
                            "the file's content: restore the file, or start a new run")
        hashes[f"{key}_file_sha256"] = actual
    return dataclasses.replace(cfg, **hashes)


def validate(cfg: TrainConfig) -> TrainConfig:
    """Cross-field checks that types alone cannot express."""
    sizes = [("img_size", cfg.img_size)] + ([("eval_size", cfg.eval_size)] if cfg.eval_size else [])
    for name, size in sizes:
        try:
            check_input_size(size)
        except ValueError:
            raise UserError(f"{name} must be W,H with positive multiples of 32, got {size}") from None
    for name in ranges.RANGES:  # values that did not come through parse_value (eval.py's overrides, say)
        ranges.check(name, getattr(cfg, name), "config")
    if cfg.head_init != "none" and not cfg.weights:
        raise UserError(f"head_init {cfg.head_init} maps the head rows of --weights: give --weights (e.g. darknet's "
                        "COCO yolov3-tiny.weights), or drop --head-init")
    augment_config(cfg)
    cfg = resolve_amp(cfg)
    unknown = [c for c in cfg.classes if c not in KITTI_CLASSES]
    if not cfg.classes or unknown or len(set(cfg.classes)) != len(cfg.classes):
        raise UserError(f"classes must list distinct KITTI classes ({', '.join(KITTI_CLASSES)}), got "
                        f"{','.join(cfg.classes) or 'none'}" + (f": unknown {', '.join(unknown)}" if unknown else ""))
    return cfg


def config_differences(saved: dict, current: dict, ignore=OPERATIONAL_KEYS) -> list[str]:
    """'key: saved -> current' for every key (outside ``ignore``) whose values differ between two config dicts.

    Both sides are read through ``from_dict``, so keys an older version did not write take their defaults; a file
    hash that one side never recorded is not a difference (the file itself is checked by ``with_file_hashes``).
    """
    a, b = to_dict(from_dict(saved)), to_dict(from_dict(current))
    unrecorded = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("derived")
                  and not (a[f.name] and b[f.name])}
    keys = [k for k in a if k not in set(ignore) | unrecorded and a[k] != b[k]]
    return [f"{k}: {a[k]!r} -> {b[k]!r}" for k in keys]


SEED_SOURCES = ("init", "order", "aug")


def source_seed(cfg: TrainConfig, source: str) -> int:
    """The seed of one source of randomness (init, order or aug): its own flag, else --seed."""
    own = {"init": cfg.seed_init, "order": cfg.seed_order, "aug": cfg.seed_aug}[source]
    return cfg.seed if own < 0 else own


def resolve_amp(cfg: TrainConfig) -> TrainConfig:
    """``amp: auto`` -> on where bf16 autocast pays off (a CUDA device, or a CPU with native bf16 instructions), else
    off. The choice is written into the config, so two machines that decide differently run different configs."""
    if cfg.amp != "auto":
        return cfg
    import torch

    from utils.environment import cpu_has_native_bf16
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    return dataclasses.replace(cfg, amp="on" if cuda or cpu_has_native_bf16() else "off")


def augment_config(cfg: TrainConfig) -> AugmentConfig:
    """The training augmentation of the config (data/transforms.py checks the values)."""
    return AugmentConfig(flip_p=cfg.flip_p, hsv=tuple(cfg.hsv), scale=tuple(cfg.scale), translate=cfg.translate)


def to_dict(cfg: TrainConfig) -> dict:
    """Plain types only (lists for tuples), as written to config.yaml and the checkpoint."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


# Keys an older version wrote under another name: its run directories and checkpoints still read.
RENAMED_KEYS = {"stop_after": "max_steps"}


def from_dict(values: dict) -> TrainConfig:
    """Inverse of ``to_dict`` (a key of RENAMED_KEYS is read under its new name); unknown keys raise."""
    values = {RENAMED_KEYS.get(k, k): v for k, v in values.items()}
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise UserError(f"unknown config key(s) {', '.join(unknown)}")
    return validate(TrainConfig(**{k: parse_value(k, v, "config") for k, v in values.items()}))

"""One training run end to end: data, model, optimizer, resume, the epoch loop, checkpoints and the summary.

Every file of the run directory is written through utils/runs.py or utils/checkpoint.py; under DDP only rank 0
writes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from data.kitti import KittiDataset
from data.loader import build_train_loader
from data.transforms import AugmentConfig
from models.darknet import Darknet
from utils import checkpoint, plots, runs
from utils.board import open_board
from utils.config import TrainConfig, to_dict
from utils.distributed import Dist
from utils.engine import NonFiniteLoss, Position, make_optimizer, train_one_epoch, unwrap
from utils.evaluate import HEADLINE_NAME, evaluate, headline
from utils.progress import Progress
from utils.seed import augmentation_rng, upsample_kind

# Config keys that may change between a checkpoint and its resumption without changing what is computed.
RESUME_FREE_KEYS = ("workers", "stop_after", "checkpoint_every", "eval_every", "device")


class StopRequested(Exception):
    """--stop-after reached: the run ends as if interrupted, with a checkpoint at that step."""


@dataclass
class Run:
    """What the loop needs besides the config."""

    cfg: TrainConfig
    run_dir: Path
    device: torch.device
    dist: Dist
    switches: dict


def dataset_root(cfg: TrainConfig) -> Path:
    """--data, or the embedded synthetic set (generated once into the cache, reused while valid)."""
    if cfg.data:
        return Path(cfg.data)
    from data.synthetic import ensure_dataset
    cache = Path(cfg.synthetic_cache)
    if not cache.is_absolute():
        cache = runs.REPO / cache
    return ensure_dataset(cache, cfg.synthetic_num, cfg.synthetic_seed)


def build_model(cfg: TrainConfig, device: torch.device) -> Darknet:
    """The model, initialised from the global torch RNG (seeded by utils.seed before this is called)."""
    model = Darknet(cfg.model, num_classes=len(cfg.classes), upsample=upsample_kind(cfg.determinism))
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if cfg.channels_last else model


def train(run: Run, resume: str | None = None, log=print) -> dict:
    """Train to the end (or to --stop-after) and return the summary written to summary.json."""
    cfg, dist = run.cfg, run.dist
    if not dist.is_main:
        log = _silent
    root = dataset_root(cfg)
    train_set = KittiDataset(root, cfg.train_split, classes=cfg.classes, bad_labels=cfg.bad_labels, cache=cfg.cache)
    val_set = KittiDataset(root, cfg.val_split, classes=cfg.classes, bad_labels=cfg.bad_labels, cache=cfg.cache)
    model = build_model(cfg, run.device)
    heads = model.heads
    optimizer = make_optimizer(model, cfg)
    pos, best = _begin(run, resume, model, optimizer, log)
    ddp_model = dist.wrap(model)
    batches = len(train_loader(cfg, train_set, 0, 0, dist))
    total_steps = cfg.epochs * (batches // cfg.accumulate)
    metrics = runs.MetricsLog(run.run_dir / "metrics.jsonl", mirror=open_board(run.run_dir)) if dist.is_main else None
    state = {"best": best, "last_ckpt": str(resume) if resume else None}
    progress = Progress(dist.is_main, log)
    tic = time.perf_counter()

    def on_step(record):
        if metrics:
            metrics.write(record)
        progress.step(record, batches // cfg.accumulate)
        if cfg.checkpoint_every and pos.step % cfg.checkpoint_every == 0:
            _save(run, "last.pt", model, optimizer, pos, metrics, state)
        if cfg.stop_after and pos.step >= cfg.stop_after:
            _save(run, "last.pt", model, optimizer, pos, metrics, state)
            raise StopRequested

    try:
        for epoch in range(pos.epoch, cfg.epochs):
            pos.epoch = epoch
            loader = train_loader(cfg, train_set, epoch, pos.batch, dist)
            progress.start_epoch(epoch, cfg.epochs)
            train_one_epoch(ddp_model, heads, optimizer, loader, pos, cfg, total_steps, run.device, on_step,
                            dist.mean)
            pos.epoch, pos.batch = epoch + 1, 0
            _save(run, "last.pt", model, optimizer, pos, metrics, state)
            if _eval_due(cfg, epoch):
                _evaluate(run, model, val_set, pos, metrics, state, optimizer, log)
    except StopRequested:
        log(f"stopped after optimizer step {pos.step} as asked (--stop-after); resume with --resume "
            f"{run.run_dir / 'last.pt'}")
        return {"stopped_at_step": pos.step}
    except NonFiniteLoss as exc:
        raise NonFiniteLoss(f"{exc}; last good checkpoint: {state['last_ckpt'] or 'none written yet'}") from None
    finally:
        if metrics:
            metrics.close()
    return _finish(run, model, state, time.perf_counter() - tic)


def train_loader(cfg, dataset, epoch, start_batch, dist):
    return build_train_loader(
        dataset, seed=cfg.seed, batch_size=cfg.batch_size, base_size=tuple(cfg.img_size), workers=cfg.workers,
        epoch=epoch, start_batch=start_batch, rank=dist.rank, world_size=dist.world_size,
        multiscale=cfg.multiscale, scale_every=cfg.scale_every,
        aug=AugmentConfig(flip_p=cfg.flip_p, hsv=tuple(cfg.hsv)), aug_rng=augmentation_rng(cfg.determinism))


def _eval_due(cfg, epoch: int) -> bool:
    last = epoch + 1 == cfg.epochs
    return last or (cfg.eval_every > 0 and (epoch + 1) % cfg.eval_every == 0)


def _evaluate(run: Run, model, val_set, pos, metrics, state, optimizer, log) -> None:
    result = evaluate(unwrap(model), val_set, run.cfg, run.device, run.dist)
    if not run.dist.is_main:
        return
    score = headline(result)
    metrics.write({"type": "eval", "step": pos.step, "epoch": pos.epoch, "headline": score, **result})
    log(f"epoch {pos.epoch}: {HEADLINE_NAME} = {score:.2f}, COCO mAP@0.5 = "
        f"{result['coco']['mAP50']:.2f}")
    state["final"] = result
    if state["best"] is None or score > state["best"]["headline"]:
        state["best"] = {"headline": score, "step": pos.step, "epoch": pos.epoch}
        _save(run, "best.pt", model, optimizer, pos, metrics, state, all_ranks=False)


def _save(run: Run, name: str, model, optimizer, pos: Position, metrics, state, all_ranks: bool = True) -> None:
    """Write a checkpoint from rank 0. With ``all_ranks`` (every rank calls it) it holds each rank's RNG state."""
    rngs = run.dist.gather(checkpoint.capture_rng()) if all_ranks else [checkpoint.capture_rng()]
    if not run.dist.is_main:
        return
    if metrics:
        metrics.sync()
    path = run.run_dir / name
    checkpoint.save(path, {
        "model": unwrap(model).state_dict(), "optimizer": optimizer.state_dict(),
        "scheduler": {"kind": run.cfg.schedule, "step": pos.step},
        "epoch": pos.epoch, "step": pos.step, "batch": pos.batch,
        "config": to_dict(run.cfg), "rng": rngs, "world_size": run.dist.world_size,
        "best": state["best"],
    })
    if name == "last.pt":
        state["last_ckpt"] = str(path)


def _silent(*_args) -> None:
    """The log of ranks other than 0."""


def _begin(run: Run, resume: str | None, model, optimizer, log) -> tuple[Position, dict | None]:
    """Where training starts: step 0, or the checkpoint's position with metrics.jsonl cut back to it."""
    if not resume:
        log(model.summary())
        return Position(), None
    pos, best = _restore(resume, run.cfg, model, optimizer, run.dist)
    if run.dist.is_main:
        runs.truncate_metrics(run.run_dir / "metrics.jsonl", pos.step)
    log(f"resuming {resume} at step {pos.step} (epoch {pos.epoch}, batch {pos.batch})")
    return pos, best


def _restore(path, cfg: TrainConfig, model, optimizer, dist: Dist) -> tuple[Position, dict | None]:
    """Load a checkpoint into model and optimizer; refuse one from another config, model or world size."""
    ckpt = checkpoint.load(path)
    if ckpt["world_size"] != dist.world_size:
        raise ValueError(f"{path}: written by {ckpt['world_size']} process(es), resumed with {dist.world_size}: "
                         "the world size is part of the reproducibility key")
    differing = checkpoint.config_differences(ckpt["config"], to_dict(cfg), ignore=RESUME_FREE_KEYS)
    if differing:
        raise ValueError(f"{path}: checkpoint was written with another config; differing keys:\n  "
                         + "\n  ".join(differing))
    checkpoint.check_model_state(path, ckpt["model"], model.state_dict())
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    checkpoint.restore_rng(ckpt["rng"][min(dist.rank, len(ckpt["rng"]) - 1)])
    return Position(epoch=ckpt["epoch"], step=ckpt["step"], batch=ckpt["batch"]), ckpt["best"]


def _finish(run: Run, model, state, seconds: float) -> dict:
    """summary.json with the final metrics and both fingerprints (rank 0), returned on every rank."""
    summary = {"weights_sha256": runs.weights_sha256(unwrap(model).state_dict())}
    if run.dist.is_main:
        records = runs.read_metrics(run.run_dir / "metrics.jsonl")
        losses = runs.step_losses(records)
        plots.plot_training_loss([r for r in records if r.get("type") == "train"], run.run_dir / "loss.png")
        summary.update({
            "losses_sha256": runs.losses_sha256(losses), "steps": len(losses), "train_seconds": round(seconds, 1),
            "final": state.get("final"), "best": state["best"], "run_dir": str(run.run_dir),
        })
        runs.write_json(run.run_dir / "summary.json", summary)
    return summary

"""One training run: the Trainer holds model, optimizer, position, best score and the metrics log, and runs the
epoch loop with checkpoints, evaluations and the final summary. Under DDP only rank 0 writes files.
"""
from __future__ import annotations

import time
from itertools import islice
from pathlib import Path

import torch
import yaml

from evaluation.evaluate import evaluate
from evaluation.metrics import HEADLINE_NAME, headline
from evaluation.nms import NonFiniteOutput
from training import build, checkpoint
from training.board import open_board
from training.config import TrainConfig, config_differences, to_dict
from training.optim import make_optimizer, make_schedule
from training.run_dir import (
    MetricsLog,
    plot_training_loss,
    read_metrics,
    step_losses,
    truncate_metrics,
)
from training.step import NonFiniteLoss, Position, train_steps
from utils.distributed import Dist
from utils.environment import peak_memory_mb
from utils.errors import UserError
from utils.fingerprint import losses_sha256, weights_sha256
from utils.io import write_json
from utils.progress import Progress
from utils.timing import NO_TIMER, SectionTimer


def _silent(*_args) -> None:
    """The log of ranks other than 0."""


def _check_belongs(path, config: dict, run_dir: Path) -> None:
    """Refuse a checkpoint whose config is not the one of the run directory it would continue (and write) into."""
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{path}: not inside a run directory (no {run_dir / 'config.yaml'}); --resume continues a "
                        "run where it was written")
    with open(run_dir / "config.yaml") as f:
        differing = config_differences(yaml.safe_load(f), config)
    if differing:
        raise UserError(f"{path}: this checkpoint belongs to another run than {run_dir} (its config differs from "
                        f"config.yaml: {'; '.join(differing)}); resume a checkpoint in its own run directory")


class Trainer:
    """Everything one run carries from step to step.

    Attributes:
        pos: where training stands (epoch, optimizer step, batch within the epoch).
        best: {"headline", "step", "epoch"} of the best evaluation so far (best.pt), or None.
        final: the metrics of the latest evaluation, or None.
        last_ckpt: "PATH (step N)" of the latest last.pt written, or None.
        metrics: metrics.jsonl (rank 0, while ``fit`` runs), else None.
    """

    def __init__(self, cfg: TrainConfig, device: torch.device, dist: Dist = Dist(), log=print,
                 timer: SectionTimer = NO_TIMER, recorded_manifest: Path | None = None):
        """Build datasets, model and optimizer: bad data or a bad cfg fails here, before any file is written.
        ``timer`` charges the loop's sections (benchmarks/loop_profile.py); the default one does nothing.
        ``self.cfg`` is ``cfg`` with the data's sha256 (``self.data``: the identity; a changed one is refused,
        named from ``recorded_manifest``, the resumed run's data_manifest.tsv)."""
        self.device, self.dist, self.run_dir, self.timer = device, dist, None, timer
        self.writer = checkpoint.BackgroundWriter()
        self.log = log if dist.is_main else _silent
        self.train_set, self.val_set = build.datasets(cfg)
        self.data = build.data_identity(self.train_set, self.val_set)
        self.cfg = cfg = build.with_data_identity(cfg, self.data, recorded_manifest)
        self.model = build.model(cfg, device)
        if cfg.weights:
            self.log(build.initial_weights(self.model, cfg))
        self.optimizer = make_optimizer(self.model, cfg)
        self.loader = build.train_loader(cfg, self.train_set, dist=dist)  # moved on by set_epoch
        self.steps_per_epoch = self.loader.batches_per_epoch // cfg.accumulate
        images_per_step = cfg.batch_size * cfg.accumulate * dist.world_size
        self.schedule = make_schedule(cfg, images_per_step, cfg.epochs * self.steps_per_epoch)
        self.pos, self.best, self.final, self.last_ckpt, self.metrics = Position(), None, None, None, None

    def resume(self, path: str | Path, run_dir: Path) -> None:
        """Continue from a checkpoint of the run in ``run_dir``: model, optimizer, position, best score and RNG
        states; the metrics log is cut back to the checkpoint's step, since every later line will be written again."""
        ckpt = checkpoint.load(path)
        _check_belongs(path, ckpt["config"], Path(run_dir))
        if ckpt["world_size"] != self.dist.world_size:
            raise UserError(f"{path}: written by {ckpt['world_size']} process(es), resumed with "
                            f"{self.dist.world_size}: the world size is part of the reproducibility key")
        differing = config_differences(ckpt["config"], to_dict(self.cfg))
        if differing:
            raise UserError(f"{path}: checkpoint was written with another config; differing keys:\n  "
                            + "\n  ".join(differing))
        checkpoint.check_model_state(path, ckpt["model"], self.model.state_dict())
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        checkpoint.restore_rng(ckpt["rng"][min(self.dist.rank, len(ckpt["rng"]) - 1)])
        self.pos = Position(epoch=ckpt["epoch"], step=ckpt["step"], batch=ckpt["batch"])
        self.best, self.last_ckpt, self.run_dir = ckpt["best"], f"{path} (step {ckpt['step']})", Path(run_dir)
        if self.dist.is_main:
            truncate_metrics(self.run_dir / "metrics.jsonl", self.pos.step)
        self.log(f"resuming {path} at step {self.pos.step} (epoch {self.pos.epoch}, batch {self.pos.batch})")

    def fit(self, run_dir: Path) -> dict:
        """Train to the end, writing into ``run_dir``, and return the summary (also summary.json); with
        --max-steps N, stop after N optimizer steps of this call with last.pt written and return
        ``{"stopped_at_step": step}``."""
        self.run_dir = Path(run_dir)
        if self.pos.step == 0:
            self.log(self.model.summary())
        ddp_model = self.dist.wrap(self.model)
        if self.dist.is_main:
            self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", mirror=open_board(self.run_dir))
        progress = Progress(self.dist.is_main, self.log)
        stop_step = self.pos.step + self.cfg.max_steps if self.cfg.max_steps else None
        tic = time.perf_counter()
        try:
            for epoch in range(self.pos.epoch, self.cfg.epochs):
                self._train_epoch(ddp_model, epoch, progress, stop_step)
                stopping = self.pos.step == stop_step
                self._end_epoch(epoch, stopping)
                if stopping:
                    self.log(f"stopped after optimizer step {self.pos.step} as asked (--max-steps); resume with "
                             f"--resume {self.run_dir / 'last.pt'}")
                    return {"stopped_at_step": self.pos.step}
            with self.timer.section("checkpoint"):
                self.writer.wait()  # the last checkpoint is on disk before the run says it finished
        except (NonFiniteLoss, NonFiniteOutput) as exc:
            raise NonFiniteLoss(f"{exc}; {self._way_on()}") from None
        finally:
            progress.close()
            try:
                self.writer.wait()
            finally:
                if self.metrics:
                    self.metrics.close()
        return self._finish(time.perf_counter() - tic)

    def _end_epoch(self, epoch: int, stopping: bool) -> None:
        """After ``_train_epoch``: at a complete epoch's end move to the next one, write last.pt (every
        --checkpoint-epochs-th epoch and the last one) and evaluate when due; where training stops (``stopping``),
        at an epoch's end or within it, last.pt is written too."""
        complete = self.pos.batch == self.steps_per_epoch * self.cfg.accumulate
        if complete:
            self.pos.epoch, self.pos.batch = epoch + 1, 0
        last = epoch + 1 == self.cfg.epochs
        if stopping or (complete and (last or (epoch + 1) % self.cfg.checkpoint_epochs == 0)):
            self.save("last.pt")
        if complete and (last or (self.cfg.eval_every > 0 and (epoch + 1) % self.cfg.eval_every == 0)):
            self.evaluate()

    def _train_epoch(self, ddp_model, epoch: int, progress: Progress, stop_step: int | None) -> None:
        """The rest of ``epoch``, or up to optimizer step ``stop_step`` if that comes first (the batches are cut
        there, so the loop itself knows nothing of stopping)."""
        cfg = self.cfg
        self.pos.epoch = epoch
        self.loader.set_epoch(epoch, self.pos.batch)
        batches = self.loader if stop_step is None else islice(self.loader,
                                                               (stop_step - self.pos.step) * cfg.accumulate)
        progress.start_epoch(epoch, cfg.epochs)
        for record in train_steps(ddp_model, self.model.heads, self.optimizer, batches, self.pos, cfg,
                                  self.schedule, self.device, self.dist.mean, self.timer):
            with self.timer.section("bookkeeping"):
                if self.metrics:
                    self.metrics.write(record)
                progress.step(record, self.steps_per_epoch)
            if cfg.checkpoint_every and self.pos.step % cfg.checkpoint_every == 0:
                self.save("last.pt")

    def evaluate(self) -> None:
        """Score the model on the val split (every rank predicts a shard); rank 0 logs it and keeps best.pt."""
        with self.timer.section("evaluation"):
            result = evaluate(self.model, self.val_set, build.predict_settings(self.cfg), self.device, self.dist)
        if not self.dist.is_main:
            return
        score = headline(result)
        self.metrics.write({"type": "eval", "step": self.pos.step, "epoch": self.pos.epoch, "headline": score,
                            **result})
        self.log(f"epoch {self.pos.epoch}: {HEADLINE_NAME} = {score:.2f}, COCO mAP@0.5 = "
                 f"{result['coco']['mAP50']:.2f}")
        self.final = result
        if self.best is None or score > self.best["headline"]:
            self.best = {"headline": score, "step": self.pos.step, "epoch": self.pos.epoch}
            self.save("best.pt", all_ranks=False)

    def save(self, name: str, all_ranks: bool = True) -> None:
        """Write a checkpoint from rank 0, in the background (checkpoint.BackgroundWriter). With ``all_ranks``
        (every rank calls it) it holds each rank's RNG state."""
        with self.timer.section("checkpoint"):
            self._save(name, all_ranks)

    def _save(self, name: str, all_ranks: bool) -> None:
        self._check_finite_weights()
        rngs = self.dist.gather(checkpoint.capture_rng()) if all_ranks else [checkpoint.capture_rng()]
        if not self.dist.is_main:
            return
        if self.metrics:
            self.metrics.sync()
        path = self.run_dir / name
        self.writer.submit(path, {
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": {"kind": self.cfg.schedule, "step": self.pos.step},
            "epoch": self.pos.epoch, "step": self.pos.step, "batch": self.pos.batch,
            "config": to_dict(self.cfg), "rng": rngs, "world_size": self.dist.world_size, "best": self.best,
        })
        if name == "last.pt":
            self.last_ckpt = f"{path} (step {self.pos.step})"

    def _way_on(self) -> str:
        """What a user whose run diverged can start again from: a checkpoint only when its parameters are sane
        (checkpoint.SANE_PARAMETER_LIMIT), since a run can write checkpoints of blown-up weights before it fails."""
        self.writer.wait()  # the last checkpoint is on disk before it is judged
        found = ([(f"best evaluated {self.run_dir / 'best.pt'} (step {self.best['step']})", self.run_dir / "best.pt")]
                 if self.best else []) + ([(f"last {self.last_ckpt}", self.run_dir / "last.pt")]
                                          if self.last_ckpt else [])
        names = [n for n, _ in self.model.named_parameters()]
        judged = [(what, path, checkpoint.largest_parameter(path, names)) for what, path in found]
        sane = [(what, path, top) for what, path, top in judged if top <= checkpoint.SANE_PARAMETER_LIMIT]
        if sane:
            what, path, top = sane[0]
            return (f"the {what} looks sane (largest |parameter| {top:.3g}, limit "
                    f"{checkpoint.SANE_PARAMETER_LIMIT:g}): start a new run from it with --weights {path} and a "
                    "lower --lr")
        seen = "; ".join(f"{what} blown up (largest |parameter| {top:.3g}, above "
                         f"{checkpoint.SANE_PARAMETER_LIMIT:g})" for what, _, top in judged)
        return f"{seen or 'no checkpoint written yet'}: start a fresh run with a lower --lr"

    def _check_finite_weights(self) -> None:
        """A checkpoint is written only of finite weights: one step can push them to inf with a finite loss, and
        a later resume or evaluation must not start from that."""
        tensors = [t for t in self.model.state_dict().values() if t.is_floating_point()]  # BN statistics too
        if not torch.stack([torch.isfinite(t).all() for t in tensors]).all():
            raise NonFiniteLoss(f"the weights became non-finite at optimizer step {self.pos.step} (epoch "
                                f"{self.pos.epoch}) although the loss was finite: the learning rate is too high")

    def _finish(self, seconds: float) -> dict:
        """summary.json with the final metrics and both fingerprints (rank 0), returned on every rank."""
        summary = {"weights_sha256": weights_sha256(self.model.state_dict())}
        if self.dist.is_main:
            records = read_metrics(self.run_dir / "metrics.jsonl")
            losses = step_losses(records)
            plot_training_loss([r for r in records if r.get("type") == "train"], self.run_dir / "loss.png")
            summary.update({
                "losses_sha256": losses_sha256(losses), "steps": len(losses), "train_seconds": round(seconds, 1),
                "peak_memory_mb": peak_memory_mb(self.device),
                "final": self.final, "best": self.best, "run_dir": str(self.run_dir),
            })
            write_json(self.run_dir / "summary.json", summary)
        return summary

"""One training process: determinism first, then devices and ranks, the run directory, the Trainer, the summary."""
from __future__ import annotations

from pathlib import Path

import torch

from evaluation.metrics import HEADLINE_NAME, headline
from training import build
from training.config import TrainConfig, to_dict
from training.run_dir import new_run_dir, write_config
from training.trainer import Trainer
from utils.distributed import from_env, shutdown
from utils.environment import environment
from utils.io import write_json


def run_training(cfg: TrainConfig, resume: str | None = None, project: str = "runs", name: str = "exp",
                 log=print) -> dict:
    """Configure the process, train (or resume), and log the run directory, final metrics and fingerprints.

    Returns the summary (summary.json on rank 0; ``{"stopped_at_step": N}`` after --stop-after).
    """
    switches, device = build.process(cfg)
    dist = from_env(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        run_dir = dist.broadcast(_prepare_run_dir(cfg, resume, project, name, switches, device, dist)
                                 if dist.is_main else None)
        trainer = Trainer(cfg, Path(run_dir), device, dist, log)
        if resume:
            trainer.resume(resume)
        summary = trainer.fit()
    finally:
        shutdown(dist)
    if dist.is_main and "losses_sha256" in summary:
        _report(summary, log)
    return summary


def _prepare_run_dir(cfg: TrainConfig, resume, project, name, switches: dict, device, dist) -> str:
    """A new run directory with config.yaml and env.json, or the checkpoint's own on --resume."""
    if resume:
        return str(Path(resume).parent)
    run_dir = new_run_dir(project, name)
    write_config(run_dir, to_dict(cfg))
    extra = {"world_size": dist.world_size, "backend": dist.backend, "per_rank_batch": cfg.batch_size}
    write_json(run_dir / "env.json", environment(switches, device, extra))
    return str(run_dir)


def _report(summary: dict, log) -> None:
    log(f"run directory: {summary['run_dir']}")
    final = summary.get("final")
    if final:
        log(f"final: {HEADLINE_NAME} = {headline(final):.2f}, COCO mAP@0.5 = "
            f"{final['coco']['mAP50']:.2f}, mAP@[.5:.95] = {final['coco']['mAP']:.2f}")
    log(f"weights_sha256 {summary['weights_sha256']}")
    log(f"losses_sha256  {summary['losses_sha256']}")

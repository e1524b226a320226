"""One training process: determinism first, then devices and ranks, the Trainer (data and model, checked before any
file is written), the run directory, training, and the summary."""
from __future__ import annotations

import contextlib
import json
import shutil
from pathlib import Path

import torch

from data.identity import MANIFEST, write_manifest
from evaluation.metrics import HEADLINE_NAME, headline
from training import build
from training.config import TrainConfig, to_dict
from training.run_dir import new_run_dir, write_config
from training.trainer import Trainer
from utils.distributed import Dist, from_env, shutdown
from utils.environment import environment, reproducibility_key
from utils.errors import UserError
from utils.io import remove_stale_temporaries, write_json
from utils.lock import FolderLock


def run_training(cfg: TrainConfig, resume: str | None = None, project: str = "runs", name: str = "exp",
                 log=print) -> dict:
    """Configure the process, train (or resume), and log the run directory, final metrics and fingerprints.

    Returns the summary (summary.json on rank 0; ``{"stopped_at_step": N}`` after --max-steps).
    """
    switches, device = build.process(cfg)
    dist = from_env(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    extra = {"world_size": dist.world_size, "backend": dist.backend, "per_rank_batch": cfg.batch_size}
    env = environment(switches, device, extra)
    try:
        recorded = Path(resume).parent / MANIFEST if resume else None
        trainer = Trainer(cfg, device, dist, log, recorded_manifest=recorded)
        if resume:
            run_dir = Path(resume).parent
            check_resume_machine(resume, run_dir, env)
            with _hold(run_dir, dist, log):
                trainer.resume(resume, run_dir)
                summary = trainer.fit(run_dir)
        else:
            run_dir = Path(dist.broadcast(str(_new_run(trainer, project, name, env)) if dist.is_main else None))
            with _hold(run_dir, dist, log):
                summary = _fit_fresh(trainer, run_dir, dist)
    finally:
        shutdown(dist)
    if dist.is_main and "losses_sha256" in summary:
        _report(summary, log)
    return summary


@contextlib.contextmanager
def _hold(run_dir: Path, dist: Dist, log):
    """Rank 0 holds the run directory while it trains (a second process refuses it, naming this one's pid), and
    removes the temporary files a killed writer left there before."""
    if not dist.is_main:
        yield
        return
    with FolderLock(run_dir, "run directory"):
        for path in remove_stale_temporaries(run_dir):
            log(f"removed {path}: a temporary file of a write that was killed")
        yield


def _new_run(trainer: Trainer, project, name, env: dict) -> Path:
    run_dir = new_run_dir(project, name)
    write_config(run_dir, to_dict(trainer.cfg))
    write_manifest(run_dir / MANIFEST, trainer.data)
    write_json(run_dir / "env.json", env)
    return run_dir


def _fit_fresh(trainer: Trainer, run_dir: Path, dist: Dist) -> dict:
    """Train a new run; a run that fails before its first optimizer step leaves no run directory behind."""
    try:
        return trainer.fit(run_dir)
    except BaseException:
        if dist.is_main and trainer.pos.step == 0:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise


def check_resume_machine(resume: str | Path, run_dir: Path, env: dict) -> None:
    """Refuse to resume on another machine or software than the run's: the resumed run would claim bits that
    neither environment reproduces."""
    if not (run_dir / "env.json").is_file():
        raise UserError(f"{resume}: not inside a run directory (no {run_dir / 'env.json'}); --resume continues a "
                        "run where it was written")
    saved_key = reproducibility_key(json.loads((run_dir / "env.json").read_text()))
    changed = [f"{k}: {v!r} -> {reproducibility_key(env)[k]!r}" for k, v in saved_key.items()
               if v != reproducibility_key(env)[k]]
    if changed:
        raise UserError(f"{resume}: {run_dir} was trained on another machine or software ({'; '.join(changed)}); "
                        "a resumed run would reproduce neither: resume where it was trained")


def _report(summary: dict, log) -> None:
    log(f"run directory: {summary['run_dir']}")
    final = summary.get("final")
    if final:
        log(f"final: {HEADLINE_NAME} = {headline(final):.2f}, COCO mAP@0.5 = "
            f"{final['coco']['mAP50']:.2f}, mAP@[.5:.95] = {final['coco']['mAP']:.2f}")
    log(f"weights_sha256 {summary['weights_sha256']}")
    log(f"losses_sha256  {summary['losses_sha256']}")

"""One training process: determinism first, then devices and ranks, the run directory, training, the report."""
from __future__ import annotations

from pathlib import Path

import torch

from utils import runs, seed
from utils.config import TrainConfig, to_dict


def select_device(name: str) -> torch.device:
    """auto: CUDA when available, else CPU. Asking for CUDA without one fails loudly."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but torch sees no CUDA device")
        return torch.device("cuda")
    return torch.device("cpu")


def run_training(args, cfg: TrainConfig, log=print) -> dict:
    """Configure the process, train, and print the run directory, final metrics and fingerprints."""
    switches = seed.configure(cfg.determinism, cfg.seed, cfg.threads, cfg.fill_uninitialized_memory)
    device = select_device(cfg.device)
    if cfg.amp and device.type != "cuda":
        raise ValueError("--amp (bf16 autocast) is for CUDA; this run is on the CPU")
    from utils.distributed import from_env, shutdown
    dist = from_env(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    try:
        run_dir = dist.broadcast(_prepare_run_dir(args, cfg, switches, device, dist) if dist.is_main else None)
        from utils.trainer import Run, train
        summary = train(Run(cfg, Path(run_dir), device, dist, switches), resume=args.resume, log=log)
    finally:
        shutdown(dist)
    if dist.is_main and "losses_sha256" in summary:
        _report(summary, Path(run_dir), log)
    return summary


def _prepare_run_dir(args, cfg: TrainConfig, switches: dict, device, dist) -> str:
    """A new run directory with config.yaml and env.json, or the checkpoint's own on --resume."""
    if args.resume:
        return str(Path(args.resume).parent)
    run_dir = runs.new_run_dir(args.project, args.name)
    runs.write_config(run_dir, to_dict(cfg))
    extra = {"world_size": dist.world_size, "backend": dist.backend, "per_rank_batch": cfg.batch_size}
    runs.write_json(run_dir / "env.json", runs.environment(switches, device, extra))
    return str(run_dir)


def _report(summary: dict, run_dir: Path, log) -> None:
    from utils.evaluate import HEADLINE_NAME, headline
    log(f"run directory: {run_dir}")
    final = summary.get("final")
    if final:
        log(f"final: {HEADLINE_NAME} = {headline(final):.2f}, COCO mAP@0.5 = "
            f"{final['coco']['mAP50']:.2f}, mAP@[.5:.95] = {final['coco']['mAP']:.2f}")
    log(f"weights_sha256 {summary['weights_sha256']}")
    log(f"losses_sha256  {summary['losses_sha256']}")
    from utils.reproduce import check_against_earlier
    check_against_earlier(run_dir, log)

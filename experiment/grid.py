"""The experiment of the reference post: the same training repeated in fresh processes, then compared; and the
variance decomposition (--vary): one source of randomness varied at a time.

Each run is its own ``python train.py`` process, so no cuDNN autotuning cache, RNG or allocator state is shared:
differences between runs are the ones a user would see.
"""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

from experiment.comparison import load_run
from experiment.report import write_report
from experiment.statistics import IDENTICAL_SOURCE
from experiment.variance import (
    load_sources,
    parse_sources,
    plan_runs,
    write_variance_report,
)
from training.config import TrainConfig, to_dict
from training.run_dir import new_run_dir, write_config
from utils.errors import UserError
from utils.io import write_yaml

TRAIN = Path(__file__).resolve().parents[1] / "train.py"


def parse_seeds(text: str | None, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UserError(f"--seeds must list distinct seeds, got {text!r}")
    return seeds


def run_grid(args, cfg: TrainConfig, log=print) -> dict:
    """Train every (seed, repeat) in a fresh process under runs/NAME/, then write the comparison there."""
    if args.resume:
        raise UserError("--repeat/--seeds/--vary start new runs; they cannot be combined with --resume")
    if args.vary is not None:
        return run_vary(args, cfg, log)
    seeds = parse_seeds(args.seeds, cfg.seed)
    group = new_run_dir(args.project, args.name)
    write_config(group, to_dict(cfg))
    run_dirs = []
    for seed in seeds:
        for k in range(1, args.repeat + 1):
            name = f"r{k}" if len(seeds) == 1 else f"s{seed}-r{k}"
            log(f"=== {group / name}: seed {seed}, repeat {k}/{args.repeat}")
            _train_child(group, name, dataclasses.replace(cfg, seed=seed))
            run_dirs.append(group / name)
    result = write_report(group, [load_run(p) for p in run_dirs])
    log((group / "report.md").read_text())
    log(f"report: {group / 'report.md'}")
    return result


def run_vary(args, cfg: TrainConfig, log=print) -> dict:
    """--vary: for each named source, --repeat runs varying only its seed, plus --repeat identical runs, each in a
    fresh process under runs/NAME/; then the comparison of the identical runs and the variance report there."""
    sources = parse_sources(args.vary)
    if args.seeds:
        raise UserError("--vary varies one source's seed around --seed; it cannot be combined with --seeds")
    if args.repeat < 2:
        raise UserError(f"--vary needs --repeat N with N >= 2 (runs per source, to measure a spread), got "
                        f"{args.repeat}")
    plan = plan_runs(cfg, sources, args.repeat)
    group = new_run_dir(args.project, args.name)
    write_config(group, to_dict(cfg))
    for i, (name, run_cfg) in enumerate(plan, start=1):
        log(f"=== {group / name}: run {i}/{len(plan)}")
        _train_child(group, name, run_cfg)
    by_source = load_sources(group)
    comparison = write_report(group, by_source[IDENTICAL_SOURCE])
    variance = write_variance_report(group, by_source)
    log((group / "report.md").read_text())
    log((group / "variance.md").read_text())
    log(f"reports: {group / 'report.md'}, {group / 'variance.md'}")
    return {"comparison": comparison, "variance": variance}


def _train_child(group: Path, name: str, cfg: TrainConfig) -> None:
    """One training in a fresh interpreter, from the fully resolved config written beside it."""
    preset = group / f"{name}.yaml"
    write_yaml(preset, to_dict(cfg))
    cmd = [sys.executable, str(TRAIN), "--config", str(preset), "--project", str(group), "--name", name]
    done = subprocess.run(cmd)
    if done.returncode:
        raise UserError(f"training run {group / name} failed (exit code {done.returncode}; its error is printed above)")

"""Train YOLOv3 on KITTI so that the same seed gives the same bits.

    python train.py --seed 202003                          # embedded synthetic KITTI-format set, small CPU model
    python train.py --seed 202003                          # again: says whether it reproduced the first run
    python train.py --seed 202003 --repeat 2               # N runs in fresh processes + comparison report
    python train.py --seeds 202003,1,2 --repeat 2          # seed variance beside run-to-run nondeterminism
    python train.py --vary init,order,aug --repeat 4       # which source of randomness moves mAP, and how much
    python train.py --seeds 1,2,3,4 --jobs 2 --threads 1    # a grid's runs two at a time (--devices 0-7 on GPUs)
    python train.py --seeds 1,2,3,4 --launcher ray --ray-address HOST:6379   # ... as Ray tasks on a cluster
    python train.py --config cfg/kitti.yaml --data /path/to/kitti --determinism reference
    python train.py --resume runs/exp/last.pt              # continue to the same final bits
    python train.py --max-steps 100                        # stop after 100 optimizer steps; --resume goes on
    python train.py --weights runs/exp/last.pt --lr 0.001  # a new run from a checkpoint's weights (or darknet's)
    torchrun --nproc_per_node 2 train.py --config cfg/ci-tiny.yaml   # DDP (gloo on CPU, nccl on CUDA)

Every config key is a flag (see --help); --config loads a YAML preset of keys that differ from the defaults.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from training import config as config_lib
from utils.errors import UserError, run_cli


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    run = parser.add_argument_group("run")
    run.add_argument("--config", default=None, help="YAML preset of config keys (e.g. cfg/kitti.yaml)")
    run.add_argument("--resume", default=None, help="continue from a checkpoint (runs/NAME/last.pt), in its run dir")
    run.add_argument("--project", default="runs", help="parent directory of run directories (default: runs)")
    run.add_argument("--name", default="exp", help="run directory name; exp, exp2, ... are never overwritten")
    run.add_argument("--repeat", type=int, default=1, metavar="N",
                     help="train N times, each in a fresh process, then compare (default: 1; range: N >= 1)")
    run.add_argument("--seeds", default=None, help="comma-separated seeds for a --repeat grid (default: --seed)")
    run.add_argument("--vary", default=None, metavar="SOURCES",
                     help="comma-separated subset of init,order,aug: with --repeat N, N runs per source varying only "
                          "its seed (seed+1..seed+N) and N with every seed at --seed, then variance.md")
    grid = parser.add_argument_group("grid launcher (--repeat, --seeds, --vary; the same command again resumes it)")
    grid.add_argument("--jobs", type=int, default=None,
                      help="runs at once (default 1, or one per --devices GPU; range: jobs >= 1, capped at the "
                           "grid's run count); on a CPU jobs x --threads must fit the cores")
    grid.add_argument("--devices", default=None, metavar="LIST",
                      help="CUDA devices, one per concurrent run (CUDA_VISIBLE_DEVICES), e.g. 0,1 or 0-7")
    grid.add_argument("--launcher", choices=("local", "ray"), default="local",
                      help="local processes, or Ray tasks of one GPU (or --threads CPUs) each (requirements-ray.txt)")
    grid.add_argument("--ray-address", default=None, metavar="ADDR",
                      help="--launcher ray: a running cluster (HOST:6379 or ray://HOST:10001); default: a local Ray "
                           "cluster started for the grid")
    grid.add_argument("--ray-timeout", type=float, default=None, metavar="S",
                      help="--ray-address: seconds the cluster has to answer before the grid stops with an error "
                           "(default: 30; range: S > 0)")
    config_lib.add_arguments(parser.add_argument_group("config (each overrides the preset)"))
    return parser


def resolve_config(args: argparse.Namespace) -> config_lib.TrainConfig:
    """Defaults < --config < flags; on --resume the checkpoint's config replaces the defaults and preset."""
    if args.resume:
        if args.config:
            raise UserError("--resume takes the config from the checkpoint; do not pass --config")
        from training import checkpoint
        saved = config_lib.from_dict(checkpoint.load(args.resume)["config"])
        # --max-steps describes the interrupted invocation, not the run: a resumed run goes on unless told again.
        return config_lib.resolve(args, base=dataclasses.replace(saved, max_steps=0))
    return config_lib.resolve(args, preset=args.config)


def grid_spec(args: argparse.Namespace):
    """The grid flags as experiment/grid.py's typed spec (the grid does not depend on argparse)."""
    from experiment.grid import GridSpec
    from experiment.launch import LaunchSpec
    return GridSpec(project=args.project, name=args.name, repeat=args.repeat, seeds=args.seeds, vary=args.vary,
                    launch=LaunchSpec(launcher=args.launcher, jobs=args.jobs, devices=args.devices,
                                      ray_address=args.ray_address, ray_timeout=args.ray_timeout))


def main(args: argparse.Namespace) -> dict:
    if args.repeat < 1:
        raise UserError(f"--repeat must be >= 1, got {args.repeat}")
    cfg = resolve_config(args)
    grid = args.repeat > 1 or args.seeds or args.vary is not None
    launch_flags = [flag for flag, given in (("--jobs", args.jobs is not None), ("--devices", args.devices),
                                             ("--launcher", args.launcher != "local"),
                                             ("--ray-address", args.ray_address),
                                             ("--ray-timeout", args.ray_timeout is not None)) if given]
    if launch_flags and not grid:
        raise UserError(f"{', '.join(launch_flags)}: for the runs of a grid (--repeat N, --seeds or --vary); one "
                        "run spreads over GPUs with torchrun")
    if grid:
        if args.resume:
            raise UserError("--repeat/--seeds/--vary start new runs; they cannot be combined with --resume (re-run "
                            "the grid command itself to resume a grid)")
        from experiment.grid import run_grid
        return run_grid(grid_spec(args), cfg)
    from experiment.reproduce import check_against_earlier
    from training.session import run_training
    summary = run_training(cfg, args.resume, args.project, args.name)
    if "losses_sha256" in summary:  # a finished run, on rank 0
        check_against_earlier(Path(summary["run_dir"]))
    return summary


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "train.py"))

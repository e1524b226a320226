"""Where the training loop's time goes, per optimizer step: the real Trainer with a section timer.

    python benchmarks/loop_profile.py                                   # the embedded default (python train.py)
    python benchmarks/loop_profile.py --set model=cfg/yolov3-kitti.cfg img_size=256,96 epochs=2 batch_size=4
    python benchmarks/loop_profile.py --config cfg/gpu-experiment.yaml --device cuda
    python benchmarks/loop_profile.py --smoke                           # CI: the tiny config, seconds

Runs ``training.trainer.Trainer.fit`` in this process (the same code as ``train.py``, in a temporary run
directory) with ``utils.timing.SectionTimer`` enabled and reports, per optimizer step, the milliseconds spent in:
loader (waiting for the next batch), forward_backward, optimizer (lr, step, zero_grad), bookkeeping (the step's
one host transfer of losses and fingerprint, the finite check, the metrics line, progress), checkpoint (the
snapshot handed to the background writer, and waiting for it), evaluation, and other (epoch starts, loader set-up,
summary). The **step** is loader + forward_backward + optimizer, what ``benchmarks/train_throughput.py`` times;
**loop / step** is the share of the loop's time that is the step (1.00: the loop costs nothing beyond its steps).
On CUDA the timer synchronises at section boundaries, which the plain training loop does not do.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.config import (  # noqa: E402
    TrainConfig,
    load_yaml,
    parse_value,
    validate,
    with_file_hashes,
)

SECTIONS = ("loader", "forward_backward", "optimizer", "bookkeeping", "checkpoint", "evaluation")
STEP = ("loader", "forward_backward", "optimizer")
SMOKE = ["synthetic_num=16", "img_size=256,96", "epochs=2", "batch_size=4", "burn_in_images=8", "eval_every=1"]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", default=None, help="YAML preset (default: the embedded default of train.py)")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config keys to override")
    p.add_argument("--device", default=None, choices=("cpu", "cuda"), help="default: the config's")
    p.add_argument("--json", type=Path, default=None, help="also write the profile here")
    p.add_argument("--smoke", action="store_true", help="the tiny config on CPU (CI)")
    return p


def resolve(args) -> TrainConfig:
    values = load_yaml(args.config) if args.config else {}
    for item in (SMOKE if args.smoke else []) + list(args.set):
        key, _, value = item.partition("=")
        values[key] = parse_value(key, value, f"--set {item}")
    if args.device or args.smoke:
        values["device"] = "cpu" if args.smoke else args.device
    return with_file_hashes(validate(dataclasses.replace(TrainConfig(), **values)))


def profile(cfg: TrainConfig) -> dict:
    """Train ``cfg`` to the end with the timer on; seconds per section and in total, and the step count."""
    from training import build
    from training.trainer import Trainer
    from utils.timing import SectionTimer
    _, device = build.process(cfg)
    timer = SectionTimer(enabled=True, device=device)
    trainer = Trainer(cfg, device, log=lambda *a: None, timer=timer)
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        summary = trainer.fit(Path(run_dir))
        total = time.perf_counter() - start
    seconds = {name: timer.seconds.get(name, 0.0) for name in SECTIONS}
    seconds["other"] = total - sum(seconds.values())
    return {"steps": summary["steps"], "total_s": total, "seconds": seconds,
            "images_per_step": cfg.batch_size * cfg.accumulate, "final": summary["final"]}


def table(result: dict) -> str:
    steps = result["steps"]
    per_step = {k: 1e3 * v / steps for k, v in result["seconds"].items()}
    step_ms = sum(per_step[k] for k in STEP)
    loop_ms = 1e3 * result["total_s"] / steps
    lines = ["| section | ms per step | share of the loop |", "|---|---|---|"]
    lines += [f"| {k} | {v:.2f} | {v / loop_ms:.1%} |" for k, v in per_step.items()]
    lines += [f"| **step** (loader + forward_backward + optimizer) | {step_ms:.2f} | {step_ms / loop_ms:.1%} |",
              f"| **whole loop** | {loop_ms:.2f} | 100% |"]
    ips = result["images_per_step"]
    return "\n".join(lines + ["", f"{steps} steps; step {1e3 * ips / step_ms:.1f} images/s, whole loop "
                                  f"{1e3 * ips / loop_ms:.1f} images/s: loop / step = {step_ms / loop_ms:.3f}"])


def main(args: argparse.Namespace) -> dict:
    cfg = resolve(args)
    result = profile(cfg)
    print(f"{cfg.model} at {cfg.img_size[0]}x{cfg.img_size[1]}, batch {cfg.batch_size}, {cfg.epochs} epochs, "
          f"{cfg.device}, {cfg.determinism}, amp {cfg.amp}, channels_last {cfg.channels_last}")
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps({"config": dataclasses.asdict(cfg), **result}, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""The largest stable peak learning rate per input size, with and without darknet's loss gradients and init.

    python benchmarks/stability.py                      # CPU: the small model at 416x128, 832x256, 1248x384
    python benchmarks/stability.py --smoke              # CI: one tiny search on CPU, seconds
    python benchmarks/stability.py --device cuda --cfg cfg/yolov3-kitti.cfg --sizes 640x192,1248x384 --batch 16

A trial trains from scratch on the embedded synthetic set through the real training step
(``training.step.train_steps``): ``--burn-in`` steps of darknet's burn-in to a peak lr, then ``--after`` steps at that
lr. It is **stable** when every loss is finite and no 5-step moving average of the total loss after burn-in rises
above ``SPIKE`` (1.5) times the burn-in-end loss (the median of the last 10 burn-in steps). The margin is the loss's
own batch-to-batch noise (about +-30% at fixed weights in these trials); a diverging run passes it by far, usually
on its way to NaN. ``--reuse`` reads earlier trials (same model, size, batch, burn-in, steps, variant and lr) from
JSON files instead of training them again.

The search doubles the peak lr from ``--lr-min`` until a trial is unstable, then tries the geometric midpoint of
the last stable and the first unstable lr once; the largest stable lr found is reported (within a factor sqrt(2)).
Variants (``--variants``): ``darknet`` (the default loss and init: gradients equal darknet's deltas, He-normal conv
init), ``pre-fix`` (the ablation ``box_loss=sigmoid_l2`` with PyTorch's init, a squared error on sigmoid(tx, ty) instead of
darknet's deltas; the name is kept as the label of the recorded results) and ``obj-cells``
(darknet's, with the objectness normalised by the input's cell count: ``obj_norm=cells``, models/loss.py).

Prints a Markdown table and writes every trial to a JSON file (rewritten after each trial and each finished search).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.config import TrainConfig, validate  # noqa: E402

VARIANTS = {"darknet": {"box_loss": "darknet", "init": "darknet", "obj_norm": "sum"},
            "pre-fix": {"box_loss": "sigmoid_l2", "init": "pytorch", "obj_norm": "sum"},
            "obj-cells": {"box_loss": "darknet", "init": "darknet", "obj_norm": "cells"}}
SMOKE = {"sizes": "256x96", "batch": 2, "burn_in": 5, "after": 5, "lr_min": 0.004, "lr_max": 0.016,
         "variants": "darknet", "synthetic_num": 16}
WINDOW = 5  # steps of the moving average after burn-in
REFERENCE = 10  # burn-in steps whose median is the burn-in-end loss
SPIKE = 1.5


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--cfg", default=TrainConfig.model, help="darknet cfg of the model")
    p.add_argument("--sizes", default="416x128,832x256,1248x384", help="comma-separated input sizes WxH")
    p.add_argument("--batch", type=int, default=8, help="images per step")
    p.add_argument("--burn-in", type=int, default=40, help="burn-in steps before the peak lr")
    p.add_argument("--after", type=int, default=40, help="steps at the peak lr that must stay stable")
    p.add_argument("--lr-min", type=float, default=0.0005, help="first peak lr of the search")
    p.add_argument("--lr-max", type=float, default=0.128, help="largest peak lr tried")
    p.add_argument("--variants", default="darknet,pre-fix", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--synthetic-num", type=int, default=TrainConfig.synthetic_num, help="frames of the set")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: benchmarks/results/stability-"
                                                            "DEVICE-DATE.json; smoke: under .cache/)")
    p.add_argument("--reuse", nargs="*", type=Path, default=[], help="JSON files of earlier runs whose trials count")
    p.add_argument("--smoke", action="store_true", help="one tiny CPU search (CI)")
    return p


def trial_config(args, variant: str, size: tuple[int, int], lr: float) -> TrainConfig:
    return validate(dataclasses.replace(
        TrainConfig(), model=args.cfg, img_size=size, batch_size=args.batch, lr=lr, device=args.device,
        synthetic_num=args.synthetic_num, multiscale=False, amp="on" if args.device == "cuda" else "off",
        channels_last=args.device == "cuda", fingerprint_every=10**9, **VARIANTS[variant]))


def run_trial(cfg: TrainConfig, data, burn_in: int, after: int, reuse: dict) -> dict:
    """Train ``burn_in + after`` steps from scratch at peak lr ``cfg.lr``; the losses and the verdict. A trial of the
    same settings in ``reuse`` (``trial_key``) is judged again instead of trained again."""
    key = trial_key(cfg, burn_in, after)
    if key in reuse:
        return {"lr": cfg.lr, "losses": reuse[key], "reused": True, **verdict(reuse[key], burn_in)}
    from data.loader import endless
    from training import build
    from training.optim import Schedule, make_optimizer
    from training.step import NonFiniteLoss, Position, train_steps
    _, device = build.process(cfg)
    model = build.model(cfg, device)
    schedule = Schedule(cfg.lr, burn_in, total_steps=10**9)  # cosine over 1e9 steps: the peak lr throughout
    steps = train_steps(model, model.heads, make_optimizer(model, cfg), endless(build.train_loader(cfg, data, 0, 0)),
                        Position(), cfg, schedule, device)
    losses = []
    try:
        for _ in range(burn_in + after):
            losses.append(next(steps)["total"])
    except NonFiniteLoss:
        losses.append(math.nan)
    return {"lr": cfg.lr, "losses": losses, **verdict(losses, burn_in)}


def trial_key(cfg: TrainConfig, burn_in: int, after: int) -> tuple:
    return (cfg.model, tuple(cfg.img_size), cfg.batch_size, burn_in, after, cfg.box_loss, cfg.init, cfg.obj_norm,
            round(cfg.lr, 9))


def load_reuse(paths: list[Path]) -> dict:
    """trial_key -> losses of every trial in earlier JSON files of this script."""
    found = {}
    for path in paths:
        data = json.loads(path.read_text())
        args = data["args"]
        for t in data["trials"]:
            cfg = dataclasses.replace(TrainConfig(), model=args["cfg"], img_size=tuple(t["size"]),
                                      batch_size=int(args["batch"]), lr=t["lr"], **VARIANTS[t["variant"]])
            found[trial_key(cfg, int(args["burn_in"]), int(args["after"]))] = t["losses"]
    return found


def verdict(losses: list[float], burn_in: int) -> dict:
    """stable, the burn-in-end loss and the largest later moving average relative to it."""
    if len(losses) <= burn_in or not all(math.isfinite(x) for x in losses):
        return {"stable": False, "burn_in_end_loss": None, "max_ratio": None}
    end = statistics.median(losses[max(0, burn_in - REFERENCE):burn_in])
    after = losses[burn_in:]
    window = min(WINDOW, len(after))
    moving = [sum(after[i:i + window]) / window for i in range(len(after) - window + 1)]
    ratio = max(moving) / end
    return {"stable": ratio <= SPIKE, "burn_in_end_loss": end, "max_ratio": ratio}


def search(args, variant: str, size: tuple[int, int], data, record, reuse: dict) -> dict:
    """Largest stable lr: doubling from --lr-min, then one geometric midpoint."""
    stable, unstable, lr = None, None, args.lr_min
    while lr <= args.lr_max * 1.0001:
        result = run_trial(trial_config(args, variant, size, lr), data, args.burn_in, args.after, reuse)
        record(variant, size, result)
        if not result["stable"]:
            unstable = lr
            break
        stable, lr = lr, lr * 2
    if stable is not None and unstable is not None:
        mid = math.sqrt(stable * unstable)
        result = run_trial(trial_config(args, variant, size, mid), data, args.burn_in, args.after, reuse)
        record(variant, size, result)
        stable, unstable = (mid, unstable) if result["stable"] else (stable, mid)
    return {"variant": variant, "size": list(size), "largest_stable_lr": stable, "first_unstable_lr": unstable}


def table(rows: list[dict]) -> str:
    def fmt(v):
        return "-" if v is None else f"{v:.4g}"
    lines = ["| variant | input | largest stable peak lr | first unstable peak lr |", "|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['size'][0]}x{r['size'][1]} | {fmt(r['largest_stable_lr'])} | "
              f"{fmt(r['first_unstable_lr'])} |" for r in rows]
    return "\n".join(lines)


def main(args: argparse.Namespace) -> list[dict]:
    if args.smoke:
        args = argparse.Namespace(**{**vars(args), **SMOKE, "device": "cpu"})
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",")]
    variants = [v.strip() for v in args.variants.split(",")]
    if not set(variants) <= set(VARIANTS):
        raise SystemExit(f"--variants: expected some of {', '.join(VARIANTS)}, got {args.variants}")
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = args.out or REPO / (".cache/benchmarks" if args.smoke else "benchmarks/results") / \
        f"stability-{'smoke-' if args.smoke else ''}{args.device}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from training import build
    first = trial_config(args, variants[0], sizes[0], args.lr_min)
    data = build.dataset(first, first.train_split)
    trials, rows, reuse = [], [], load_reuse(args.reuse)

    def write():  # after every trial and every finished search, so an interrupted run keeps what it measured
        out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                   "trials": trials}, indent=1) + "\n")

    def record(variant, size, result):
        trials.append({"variant": variant, "size": list(size), **result})
        print(f"  {variant} {size[0]}x{size[1]} lr {result['lr']:.4g}{' (reused)' if result.get('reused') else ''}: "
              f"{'stable' if result['stable'] else 'UNSTABLE'} (max ratio {result['max_ratio'] or math.nan:.3g})",
              flush=True)
        write()

    for variant in variants:
        for size in sizes:
            rows.append(search(args, variant, size, data, record, reuse))
            write()
    print(f"{args.cfg}, batch {args.batch}, {args.burn_in} burn-in + {args.after} steps, {args.device}")
    print(table(rows))
    print(f"trials: {out}")
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())

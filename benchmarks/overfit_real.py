"""Can the pipeline overfit six real KITTI frames? Train on them and score on the same frames.

    python benchmarks/overfit_real.py --data ../shared/kitti_sample          # 1248x384, ~5 minutes on 2 CPU cores
    python benchmarks/overfit_real.py --data KITTI_ROOT --ids 000000,000001 --size 1248x384 --steps 400

A model that cannot memorise a handful of real frames has a bug somewhere between the label parser, the letterbox,
the target assignment, the loss and the decoder, which a synthetic set (drawn by the same code that labels it)
might hide. Runs ``train.py`` itself (a fresh process, strict mode) with the frames as both splits
(``--allow-split-overlap true``), no augmentation, no multi-scale, one batch of all frames per step, and prints
COCO mAP@0.5 and the KITTI AP of the final model on those frames. Expect mAP@0.5 >= 90.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--data", type=Path, required=True, help="KITTI root holding the frames")
    p.add_argument("--ids", default=None, help="comma-separated frame ids (default: every image under --data)")
    p.add_argument("--model", default="cfg/yolov3-small-kitti.cfg", help="darknet cfg")
    p.add_argument("--size", default="1248x384", help="input WxH")
    p.add_argument("--steps", type=int, default=300, help="optimizer steps (one batch of all frames each)")
    p.add_argument("--lr", type=float, default=0.002, help="peak lr (benchmarks/stability.py gives a safe one)")
    p.add_argument("--burn-in-steps", type=int, default=100,
                   help="burn-in, in steps (benchmarks/README.md: 100 steps make lr 0.002 safe at 1248x384)")
    p.add_argument("--project", type=Path, default=None, help="where the run goes (default: a temporary folder)")
    return p


def frame_ids(args) -> list[str]:
    if args.ids:
        return [i.strip() for i in args.ids.split(",") if i.strip()]
    ids = sorted(p.stem for p in (args.data / "training" / "image_2").glob("*.png"))
    if not ids:
        raise SystemExit(f"{args.data}: no training/image_2/*.png")
    return ids


def train_command(args, split: Path, project: Path) -> list[str]:
    n = len(frame_ids(args))
    return [sys.executable, str(REPO / "train.py"), "--data", str(args.data), "--train-split", str(split),
            "--val-split", str(split), "--allow-split-overlap", "true", "--model", args.model, "--img-size",
            args.size, "--batch-size", str(n), "--epochs", str(args.steps), "--lr", str(args.lr),
            "--burn-in-images", str(args.burn_in_steps * n), "--multiscale", "false", "--flip-p", "0",
            "--eval-every", "0", "--cache", "ram", "--device", "cpu", "--project", str(project), "--name", "overfit"]


def main(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "frames.txt"
        split.write_text("\n".join(frame_ids(args)) + "\n")
        project = args.project or Path(tmp) / "runs"
        done = subprocess.run(train_command(args, split, project), cwd=REPO, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"train.py failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        summary = json.loads((project / "overfit" / "summary.json").read_text())
    final = summary["final"]
    ap40 = {c: v["AP40"]["moderate"] for c, v in final["kitti"].items()}
    print(f"{len(frame_ids(args))} frames, {args.size}, {summary['steps']} steps, lr {args.lr}: COCO mAP@0.5 "
          f"{final['coco']['mAP50']:.2f}, mAP@[.5:.95] {final['coco']['mAP']:.2f}; per class AP@[.5:.95] "
          f"{final['coco']['per_class']}; KITTI AP40 Moderate {ap40} ({summary['train_seconds']} s of training)")
    return summary


if __name__ == "__main__":
    main(get_args_parser().parse_args())

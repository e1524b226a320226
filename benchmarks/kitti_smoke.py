"""Does the real-KITTI recipe train? Its model, resolution and peak lr on synthetic data, through burn-in and on.

    python benchmarks/kitti_smoke.py            # one GPU: cfg/kitti.yaml (Darknet-53, 1248x384, batch 16 x 4)
    python benchmarks/kitti_smoke.py --smoke    # the same path on CPU with the tiny config (CI)

Runs ``train.py --config cfg/kitti.yaml`` (strict mode, a fresh process) on the embedded synthetic set with a
burn-in of ``--burn-in-steps`` optimizer steps (harsher than the preset's own, which is longer) and ``--after``
steps at the peak lr past it, then prints: the largest loss after burn-in against the loss at its end, whether a
loss was NaN (the run then stops with its error), images/s (median step, and the whole loop), and peak memory.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.config import load_yaml  # noqa: E402
from training.run_dir import read_metrics  # noqa: E402

SMOKE = {"config": "cfg/ci-tiny.yaml", "device": "cpu", "burn_in_steps": 2, "after": 4, "synthetic_num": 16}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", default="cfg/kitti.yaml", help="the preset whose model, size and lr are tried")
    p.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    p.add_argument("--burn-in-steps", type=int, default=50, help="optimizer steps of burn-in")
    p.add_argument("--after", type=int, default=200, help="optimizer steps at the peak lr after burn-in")
    p.add_argument("--synthetic-num", type=int, default=640, help="synthetic frames (half are trained on)")
    p.add_argument("--project", type=Path, default=REPO / "runs", help="where the run goes")
    p.add_argument("--smoke", action="store_true", help="the tiny config on CPU (CI)")
    return p


def command(args, steps_per_epoch: int, images_per_step: int) -> list[str]:
    epochs = math.ceil((args.burn_in_steps + args.after) / steps_per_epoch)
    return [sys.executable, str(REPO / "train.py"), "--config", args.config, "--device", args.device,
            "--synthetic-num", str(args.synthetic_num), "--epochs", str(epochs),
            "--burn-in-images", str(args.burn_in_steps * images_per_step), "--eval-every", "0",
            "--checkpoint-epochs", str(epochs), "--cache", "ram", "--project", str(args.project),
            "--name", "kitti-smoke"]


def stats(run_dir: Path, burn_in_steps: int, images_per_step: int) -> dict:
    """The smoke table's numbers from a run directory (finished or stopped by an error)."""
    train = [r for r in read_metrics(run_dir / "metrics.jsonl") if r.get("type") == "train"]
    end = [r["total"] for r in train if burn_in_steps - 5 < r["step"] <= burn_in_steps]
    after = [r["total"] for r in train if r["step"] > burn_in_steps]
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    loop = len(train) * images_per_step / summary["train_seconds"] if summary.get("train_seconds") else None
    return {"run_dir": str(run_dir), "steps": len(train), "burn_in_end_loss": statistics.fmean(end) if end else None,
            "max_loss_after_burn_in": max(after) if after else None,
            "median_step_images_per_s": statistics.median(r["images_per_s"] for r in train) if train else None,
            "loop_images_per_s": loop, "peak_memory_mb": summary.get("peak_memory_mb")}


def main(args: argparse.Namespace) -> dict:
    if args.smoke:
        args = argparse.Namespace(**{**vars(args), **SMOKE})
    preset = load_yaml(REPO / args.config)
    images_per_step = preset.get("batch_size", 8) * preset.get("accumulate", 1)
    train_frames = args.synthetic_num // 2
    steps_per_epoch = train_frames // images_per_step
    done = subprocess.run(command(args, steps_per_epoch, images_per_step), cwd=REPO, capture_output=True, text=True)
    run_dir = Path(next(line.split(": ", 1)[1] for line in done.stdout.splitlines() if
                        line.startswith("run directory: "))) if done.returncode == 0 else _last_run(args.project)
    error = done.stderr.strip().splitlines()[-1] if done.returncode else None
    result = {**stats(run_dir, args.burn_in_steps, images_per_step), "exit": done.returncode, "error": error,
              "nan": bool(error) and ("non-finite" in error or "NaN or inf" in error)}
    print(json.dumps(result, indent=1))
    return result


def _last_run(project: Path) -> Path:
    """The newest kitti-smoke run directory (a failed run prints no directory line)."""
    return max(project.glob("kitti-smoke*"), key=lambda p: p.stat().st_mtime)


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args())["exit"])

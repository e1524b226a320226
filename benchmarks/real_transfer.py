"""How do models trained on the embedded synthetic set do on real KITTI frames? Scratch against COCO-pretrained runs,
with darknet's COCO model zero-shot beside them.

    python benchmarks/real_transfer.py --runs runs/pretrained/scratch runs/pretrained/coco --data KITTI_ROOT \
        --ids 000000,000001,000002,000003,000004,000005 --zero-shot yolov3-tiny.weights yolov3-tiny.cfg coco.names \
        --sizes 416x128,832x256 --json out.json

Every finished run under each ``--runs`` folder (its ``last.pt``, the final model) and the zero-shot model (through
the ``coco-kitti`` class map) predict the frames at each input size; each is scored with evaluation/metrics.py
(COCO mAP@0.5 and mAP over the classes the frames hold, KITTI AP|R40 Moderate). Per group: the mean over its runs
and every run's value. Six frames are a handful of objects: the KITTI AP of so few is mostly the devkit's sampling
(docs/kitti.md, section 4), and COCO mAP is the number to read.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.kitti import KittiDataset  # noqa: E402
from data.transforms import parse_size  # noqa: E402
from evaluation.metrics import evaluate_frames  # noqa: E402
from evaluation.predict import predict  # noqa: E402
from experiment.report import fmt  # noqa: E402
from training import inference  # noqa: E402

KITTI_SCORED = ("Car", "Pedestrian", "Cyclist")


def score(run: inference.Inference, root: Path, split: Path, size) -> dict:
    """COCO mAP@0.5, mAP and KITTI AP40 Moderate of one model on the frames, at input ``size``."""
    data = KittiDataset(root, str(split), classes=run.classes)
    frames = predict(run.model, data, dataclasses.replace(run.settings, size=size), run.device)
    metrics = evaluate_frames(data.labels, [frames[i] for i in range(len(data))], list(run.classes))
    return {"coco_mAP50": metrics["coco"]["mAP50"], "coco_mAP": metrics["coco"]["mAP"],
            **{f"kitti_{c}_AP40_moderate": metrics["kitti"][c]["AP40"]["moderate"] for c in KITTI_SCORED
               if c in metrics["kitti"]}}


def models(args):
    """(group name, run name, Inference) of every finished run of each --runs folder, then the zero-shot model."""
    for folder in args.runs:
        for run_dir in sorted(p for p in Path(folder).iterdir() if (p / "summary.json").is_file()):
            yield folder.name, run_dir.name, inference.load(str(run_dir / "last.pt"), device="cpu")
    if args.zero_shot:
        weights, cfg, names = args.zero_shot
        yield "zero-shot", Path(weights).name, inference.load(weights, cfg, names, device="cpu",
                                                                   class_map="coco-kitti", log=lambda line: None)


def measure(args) -> dict:
    images = args.data / "training" / "image_2"
    ids = args.ids.split(",") if args.ids else sorted(p.stem for p in images.glob("*.png"))
    result = {"ids": ids, "groups": {}}
    with tempfile.TemporaryDirectory() as tmp:
        split = Path(tmp) / "frames.txt"
        split.write_text("\n".join(ids) + "\n")
        for group, name, run in models(args):
            for size in args.sizes:
                key = f"{size[0]}x{size[1]}"
                entry = result["groups"].setdefault(group, {}).setdefault(key, {"runs": {}})
                entry["runs"][name] = score(run, args.data, split, size)
    for sizes in result["groups"].values():
        for entry in sizes.values():
            metrics = sorted({k for m in entry["runs"].values() for k in m})
            entry["mean"] = {k: _mean([m.get(k) for m in entry["runs"].values()]) for k in metrics}
    return result


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def render(result: dict) -> str:
    lines = ["| input | model | runs | COCO mAP@0.5 mean (per run) | COCO mAP mean | KITTI AP40 Mod. Car / Ped mean |",
             "|---|---|---|---|---|---|"]
    for group, sizes in result["groups"].items():
        for size, entry in sizes.items():
            mean, runs = entry["mean"], entry["runs"]
            per_run = ", ".join(fmt(m["coco_mAP50"], 2) for m in runs.values())
            lines.append(f"| {size} | {group} | {len(runs)} | {fmt(mean['coco_mAP50'], 2)} ({per_run}) | "
                         f"{fmt(mean['coco_mAP'], 2)} | {fmt(mean.get('kitti_Car_AP40_moderate'), 2)} / "
                         f"{fmt(mean.get('kitti_Pedestrian_AP40_moderate'), 2)} |")
    return "\n".join(lines)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--runs", type=Path, nargs="+", default=[], help="group folders of finished runs")
    p.add_argument("--data", type=Path, required=True, help="KITTI root with the frames and their labels")
    p.add_argument("--ids", default=None, help="comma-separated frame ids (default: every image under --data)")
    p.add_argument("--zero-shot", nargs=3, metavar=("WEIGHTS", "CFG", "NAMES"), default=None,
                   help="a darknet COCO model scored beside the runs through the coco-kitti class map")
    p.add_argument("--sizes", type=lambda t: [parse_size(s, "--sizes") for s in t.split(",")], default=[(416, 128)],
                   help="input sizes WxH, comma-separated (default: 416x128, the preset's training size)")
    p.add_argument("--json", type=Path, default=None, help="write the measurements here")
    return p


def main(args) -> dict:
    if not args.runs and not args.zero_shot:
        raise SystemExit("nothing to score: give --runs GROUP... and/or --zero-shot WEIGHTS CFG NAMES")
    result = measure(args)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""Does feeding a darknet-trained model as darknet does move its scores? Four preprocessings, one model, real frames.

    python benchmarks/darknet_preprocess.py --weights yolov3-tiny.weights --cfg yolov3-tiny.cfg --names coco.names \
        --data KITTI_ROOT --ids 000000,000001,000002,000003,000004,000005 --json out.json

darknet's ``letterbox_image`` differs from the repo's letterbox in three ways: the grey of the padding (0.5 against
114/255 = 0.447), the resize filter (darknet's own bilinear, corner pixel centres aligned, against OpenCV's
INTER_LINEAR), and the values (float32 against uint8). The variants take them apart:

- ``repo``: OpenCV resize, uint8, grey 114 (what a checkpoint of this repo is fed);
- ``opencv-grey0.5``: OpenCV resize in float32, grey 0.5 (the grey and rounding of darknet, the filter of the repo);
- ``darknet-grey114``: darknet's resize, grey 114/255 (darknet's filter, the repo's grey);
- ``darknet``: ``data.transforms.letterbox_darknet``, darknet exactly (what eval.py and detect.py feed a
  ``.weights`` model).

For each input size and variant it prints COCO mAP@0.5 / mAP and KITTI AP40 Moderate on the frames (through
``--class-map``), the detections scoring >= 0.25, and against the ``darknet`` variant: the largest score change of
a detection found by both (same class, IoU >= 0.5) and the detections found by only one.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data.kitti import IMAGE_DIR, LABEL_DIR, decode_image  # noqa: E402
from data.transforms import letterbox, letterbox_darknet, parse_size  # noqa: E402
from evaluation.metrics import evaluate_frames  # noqa: E402
from evaluation.predict import detect_letterboxed  # noqa: E402
from evaluation.results import read_labels  # noqa: E402
from experiment.report import fmt  # noqa: E402
from training import inference  # noqa: E402
from utils.boxes import np_box_overlap  # noqa: E402

SHOWN = 0.25  # detect.py's default --conf-thres: the detections a user sees


def variants(image: np.ndarray, size) -> dict:
    """The four network inputs of one RGB frame: name -> (image [H, W, 3], Letterbox)."""
    scaled = image.astype(np.float32) / np.float32(255)
    return {"repo": letterbox(image, size),
            "opencv-grey0.5": letterbox(scaled, size, pad_value=0.5),
            "darknet-grey114": letterbox_darknet(image, size, pad_value=114 / 255),
            "darknet": letterbox_darknet(image, size)}


def matched_changes(ref, other) -> tuple[float, int, int]:
    """(largest |score change| of detections >= SHOWN found in both, found only in ref, found only in other)."""
    ref_keep, other_keep = ref.scores >= SHOWN, other.scores >= SHOWN
    used, largest, only_ref = set(), 0.0, 0
    for i in np.flatnonzero(ref_keep):
        same = [j for j in np.flatnonzero(other_keep) if other.names[j] == ref.names[i] and j not in used]
        ious = np_box_overlap(ref.boxes[i:i + 1], other.boxes[same])[0] if same else np.zeros(0)
        if len(ious) and ious.max() >= 0.5:
            j = same[int(ious.argmax())]
            used.add(j)
            largest = max(largest, abs(float(other.scores[j] - ref.scores[i])))
        else:
            only_ref += 1
    return largest, only_ref, int(other_keep.sum()) - len(used)


def measure(args) -> dict:
    run = inference.load(args.weights, args.cfg, args.names, device="cpu", class_map=args.class_map)
    ids = args.ids.split(",") if args.ids else sorted(p.stem for p in (args.data / IMAGE_DIR).glob("*.png"))
    images = [decode_image(args.data / IMAGE_DIR / f"{i}.png") for i in ids]
    labels = read_labels(args.data / LABEL_DIR, ids)
    out = {"ids": ids, "classes": list(run.classes), "sizes": {}}
    for size in args.sizes:
        settings = dataclasses.replace(run.settings, size=size)
        frames = {}
        for image in images:
            for name, (boxed, lb) in variants(image, size).items():
                frames.setdefault(name, []).append(detect_letterboxed(run.model, boxed, lb, settings, run.device,
                                                                      run.classes))
        out["sizes"][f"{size[0]}x{size[1]}"] = {name: _row(labels, dets, frames["darknet"], run.classes)
                                                for name, dets in frames.items()}
    return out


def _row(labels, dets, reference, classes) -> dict:
    metrics = evaluate_frames(labels, dets, list(classes))
    changes = [matched_changes(r, d) for r, d in zip(reference, dets)]
    return {"coco_mAP50": metrics["coco"]["mAP50"], "coco_mAP": metrics["coco"]["mAP"],
            "kitti_AP40_moderate": {c: v["AP40"]["moderate"] for c, v in metrics["kitti"].items()},
            "shown": [[f"{n} {s:.3f}" for n, s in zip(d.names, d.scores) if s >= SHOWN] for d in dets],
            "max_score_change_vs_darknet": max(c[0] for c in changes),
            "only_in_darknet": sum(c[1] for c in changes), "only_in_this": sum(c[2] for c in changes)}


def render(result: dict) -> str:
    lines = ["| input | preprocessing | COCO mAP@0.5 | COCO mAP | KITTI AP40 Mod. Car / Ped | detections >= 0.25 | "
             "largest score change vs darknet | only in darknet / only here |", "|---|---|---|---|---|---|---|---|"]
    for size, rows in result["sizes"].items():
        for name, r in rows.items():
            kitti = r["kitti_AP40_moderate"]
            lines.append(f"| {size} | {name} | {r['coco_mAP50']:.2f} | {r['coco_mAP']:.2f} | "
                         f"{fmt(kitti.get('Car'), 2)} / {fmt(kitti.get('Pedestrian'), 2)} | "
                         f"{sum(len(s) for s in r['shown'])} | {r['max_score_change_vs_darknet']:.3f} | "
                         f"{r['only_in_darknet']} / {r['only_in_this']} |")
    return "\n".join(lines)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--weights", required=True, help="darknet .weights")
    p.add_argument("--cfg", required=True, help="its darknet .cfg")
    p.add_argument("--names", required=True, help="its class names, one per line")
    p.add_argument("--data", type=Path, required=True, help="KITTI root with the frames and their labels")
    p.add_argument("--ids", default=None, help="comma-separated frame ids (default: every image under --data)")
    p.add_argument("--sizes", type=lambda t: [parse_size(s, "--sizes") for s in t.split(",")],
                   default=[(416, 416), (832, 256)],
                   help="input sizes WxH, comma-separated (default: 416x416,832x256)")
    p.add_argument("--class-map", default="coco-kitti", help="class map to KITTI (evaluation/class_map.py)")
    p.add_argument("--json", type=Path, default=None, help="write the measurements here")
    return p


def main(args) -> dict:
    result = measure(args)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""Score KITTI detections: KITTI 2D AP (R40 and R11, Easy/Moderate/Hard) and COCO mAP, as a table and a JSON file.

Model-free mode, existing result files (16 fields a line, one file per frame) against label files:

    python eval.py --results runs/exp/results --labels KITTI/training/label_2 --json out/metrics.json
    python eval.py --results DIR --labels KITTI/training/label_2 --split KITTI/ImageSets/val.txt --json m.json \
        --classes Car Pedestrian Cyclist

Model mode, a checkpoint on a KITTI split (default: the checkpoint's own data and val split), or a darknet model
(its .weights, .cfg and class names, e.g. the COCO yolov3, fed as darknet feeds it; --class-map coco-kitti scores
COCO's car, truck, person, bicycle and train as KITTI's Car, Truck, Pedestrian, Cyclist and Tram):

    python eval.py --weights runs/exp/best.pt [--data ROOT] [--split val] [--out runs/exp/eval]
    python eval.py --weights yolov3.weights --cfg yolov3.cfg --names coco.names --data ROOT --out out/
    python eval.py --weights yolov3-tiny.weights --cfg yolov3-tiny.cfg --names coco.names --class-map coco-kitti \
        --data ROOT --split val --img-size 832,256 --out out/      # COCO classes scored as KITTI's

Frame ids come from --split, else from every label file in --labels (sorted). A frame without a result file counts
as one without detections (one warning gives their number; every run prints how many frames had one); when no frame
has one, the directory or the ids are wrong: an error names the directory and the first expected file. Writes
OUT.json in the shape of evaluation/metrics.py and the PR curves beside it as OUT_pr.png.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from data.kitti import IMAGE_DIR, LABEL_DIR, read_split
from data.kitti_labels import KITTI_CLASSES
from data.transforms import parse_size
from evaluation.metrics import evaluate_frames, format_metrics, plot_pr_curves
from evaluation.results import label_ids, read_labels, read_results, write_results
from training.ranges import check_flags, describe
from utils.errors import UserError, run_cli
from utils.io import claim_output_dir, write_json


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    source = parser.add_mutually_exclusive_group(required=True)  # where detections come from: one mode per flag
    source.add_argument("--results", type=Path, help="directory of KITTI result files <id>.txt (model-free mode)")
    source.add_argument("--weights", help="checkpoint (runs/NAME/best.pt) or darknet .weights to run on "
                                          "--data/--split (model mode)")
    parser.add_argument("--cfg", help="model mode, darknet .weights: its darknet .cfg")
    parser.add_argument("--names", help="model mode, darknet .weights: file of its class names, one per line")
    parser.add_argument("--img-size", help="model mode: input W,H (default: the checkpoint's, or the cfg's [net])")
    parser.add_argument("--class-map", help="model mode: score the model on KITTI classes through a class map: "
                                            "coco-kitti (built in: car, truck, person, bicycle, train) or a YAML "
                                            "file of 'model class: KITTI class' lines; other classes are dropped")
    parser.add_argument("--labels", type=Path, help="directory of KITTI label files <id>.txt (model-free mode)")
    parser.add_argument("--split", help="list file of frame ids (model-free mode; default: every label file) or "
                                        "split name/list (model mode; default: the checkpoint's val split)")
    parser.add_argument("--json", type=Path, help="metrics output; PR curves go to <stem>_pr.png "
                                                  "(model mode default: OUT/metrics.json)")
    parser.add_argument("--data", help="model mode: KITTI root (default: the checkpoint's data)")
    parser.add_argument("--out", type=Path, help="model mode: output directory (default: beside the checkpoint)")
    parser.add_argument("--conf-thres", type=float, help="model mode: minimum score before NMS (default: the "
                                                         f"checkpoint's; {describe('conf_thres')})")
    parser.add_argument("--iou-thres", type=float, help="model mode: NMS IoU threshold (default: the checkpoint's; "
                                                        f"{describe('iou_thres')})")
    parser.add_argument("--max-det", type=int, help="model mode: detections kept per frame (default: the "
                                                     f"checkpoint's; {describe('max_det')})")
    parser.add_argument("--device", help="model mode: cpu or cuda (default: the checkpoint's)")
    parser.add_argument("--classes", nargs="+", default=list(KITTI_CLASSES), choices=KITTI_CLASSES, metavar="CLASS",
                        help="COCO categories (the model's class list); KITTI AP for Car/Pedestrian/Cyclist among "
                             "them (default: the 8 KITTI classes)")
    return parser


def main(args) -> dict:
    """Score ``args.results`` against ``args.labels``; prints the table, writes the JSON and PNG, returns metrics."""
    check_flags(args, ("conf_thres", "iou_thres", "max_det"))
    if args.weights:
        if args.labels is not None:
            raise UserError("--labels: model mode scores the labels of --data's split; leave out --labels")
        return main_weights(args)
    if args.class_map:
        raise UserError("--class-map maps a model's classes (--weights); result files already name KITTI classes")
    model_flags = [flag for flag in ("cfg", "names", "img_size", "data", "out", "conf_thres", "iou_thres",
                                     "max_det", "device") if getattr(args, flag) is not None]
    if model_flags:
        raise UserError(f"{', '.join('--' + f.replace('_', '-') for f in model_flags)}: for model mode (--weights); "
                        "--results scores result files as they are: leave them out")
    if args.labels is None or args.json is None:
        raise UserError("--results needs --labels and --json")
    for folder in (args.labels, args.results):
        if args.json.resolve().parent == folder.resolve():
            raise UserError(f"{args.json}: --json would write into the input folder {folder}; outputs never land "
                            "on inputs, choose another path")
    ids = read_split(".", args.split) if args.split else label_ids(args.labels)
    gt = read_labels(args.labels, ids)
    missing = []
    dt = read_results(args.results, ids, missing=missing)
    print(f"result files: {len(ids) - len(missing)} of {len(ids)} frames in {args.results}")
    metrics, curves = evaluate_frames(gt, dt, args.classes, return_curves=True)
    write_report(metrics, curves, args.json)
    print(format_metrics(metrics))
    return metrics


def main_weights(args) -> dict:
    """Run a model on a split: metrics table, JSON, PR curves and the KITTI result files."""
    from data.kitti import KittiDataset
    from evaluation.predict import predict
    from training import inference
    run = inference.load(args.weights, args.cfg, args.names, args.data, args.device,
                         class_map=args.class_map, size=parse_size(args.img_size, "--img-size"),
                         conf_thres=args.conf_thres, iou_thres=args.iou_thres, max_det=args.max_det)
    if run.data is None:
        raise UserError("--data ROOT is needed to evaluate darknet .weights (a checkpoint knows its data)")
    dataset = KittiDataset(run.data, args.split or run.split, classes=run.classes)
    frames = predict(run.model, dataset, run.settings, run.device)
    dt = [frames[i] for i in range(len(dataset))]
    out = claim_output_dir(args.out or Path(args.weights).parent / "eval", "eval.py",
                           inputs=[dataset.root / LABEL_DIR, dataset.root / IMAGE_DIR])
    write_results(out / "results", dataset.ids, [(d.names, d.boxes, d.scores) for d in dt])
    metrics, curves = evaluate_frames([dataset.labels[i] for i in range(len(dataset))], dt, list(run.classes),
                                      return_curves=True)
    write_report(metrics, curves, args.json or out / "metrics.json")
    print(format_metrics(metrics))
    print(f"results: {out / 'results'}, metrics: {args.json or out / 'metrics.json'}")
    return metrics


def write_report(metrics: dict, curves: dict, json_path: Path) -> None:
    """OUT.json (atomic) and OUT_pr.png beside it."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    write_json(json_path, metrics)
    if curves:
        plot_pr_curves(curves, json_path.with_name(json_path.stem + "_pr.png"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.exit(run_cli(main, get_args_parser().parse_args(), "eval.py"))

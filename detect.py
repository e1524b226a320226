"""Draw a model's detections on images and write KITTI result files beside them.

    python detect.py --weights runs/exp/best.pt --source path/to/image_2 --out runs/exp/detect
    python detect.py --weights runs/exp/best.pt --source frame.png --out out/ --conf-thres 0.3
    python detect.py --weights yolov3.weights --cfg yolov3.cfg --names coco.names --source frame.png --out out/
    python detect.py --weights yolov3-tiny.weights --cfg yolov3-tiny.cfg --names coco.names --class-map coco-kitti \
        --source frame.png --out out/
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from training.ranges import check_flags, describe
from utils.errors import UserError, run_cli


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--weights", required=True, help="checkpoint (runs/NAME/best.pt) or darknet .weights")
    parser.add_argument("--cfg", help="darknet .weights: its darknet .cfg")
    parser.add_argument("--names", help="darknet .weights: file of its class names, one per line")
    parser.add_argument("--class-map", help="draw and write KITTI classes through a class map: coco-kitti or a YAML "
                                            "file of 'model class: KITTI class' lines (evaluation/class_map.py)")
    parser.add_argument("--source", required=True, type=Path, help="a PNG/JPEG image or a directory of them")
    parser.add_argument("--out", required=True, type=Path, help="output directory: drawn images + <id>.txt (new, "
                                                                 "empty, or an earlier detect.py output)")
    parser.add_argument("--img-size", help="input W,H (default: the checkpoint's, or the cfg's [net])")
    parser.add_argument("--conf-thres", type=float, default=0.25,
                        help=f"minimum score drawn and written (default: 0.25; {describe('conf_thres')})")
    parser.add_argument("--iou-thres", type=float, default=None,
                        help=f"NMS IoU threshold (default: the run's; {describe('iou_thres')})")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: the run's)")
    return parser


def images_of(source: Path) -> list[Path]:
    """The images of ``source`` (a file, or a folder's .png/.jpg/.jpeg files, sorted). Two images of one stem
    (x.png and x.jpg) would write the same x.txt and x.png: refused, naming both."""
    if source.is_dir():
        found = sorted(p for p in source.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not found:
            raise UserError(f"{source}: no .png/.jpg images")
        stems: dict[str, Path] = {}
        for path in found:
            if path.stem in stems:
                raise UserError(f"{stems[path.stem]} and {path}: two images named {path.stem}, whose results would "
                                f"both be written as {path.stem}.txt and {path.stem}.png; rename or move one")
            stems[path.stem] = path
        return found
    if not source.is_file():
        raise UserError(f"{source}: no such image or directory")
    return [source]


def draw(image_bgr, frame) -> None:
    """Boxes with class name and score, in place."""
    for name, (x1, y1, x2, y2), score in zip(frame.names, frame.boxes, frame.scores):
        p1, p2 = (int(x1), int(y1)), (int(x2), int(y2))
        cv2.rectangle(image_bgr, p1, p2, (0, 255, 0), 2)
        cv2.putText(image_bgr, f"{name} {score:.2f}", (p1[0], max(12, p1[1] - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                    (0, 255, 0), 1, cv2.LINE_AA)


def main(args) -> None:
    check_flags(args, ("conf_thres", "iou_thres"))
    from data.kitti import decode_image
    from data.transforms import parse_size
    from evaluation.predict import detect_image
    from evaluation.results import write_results
    from training import inference
    from utils.io import claim_output_dir, write_bytes
    images = images_of(args.source)
    run = inference.load(args.weights, args.cfg, args.names, device=args.device, class_map=args.class_map,
                         size=parse_size(args.img_size, "--img-size"), conf_thres=args.conf_thres,
                         iou_thres=args.iou_thres)
    claim_output_dir(args.out, "detect.py", inputs=[args.source])
    for path in images:
        image = decode_image(path)
        frame = detect_image(run.model, image, run.settings, run.device, run.classes)
        write_results(args.out, [path.stem], [(frame.names, frame.boxes, frame.scores)],
                      image_sizes=[(image.shape[1], image.shape[0])])
        drawn = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
        draw(drawn, frame)
        write_bytes(args.out / f"{path.stem}.png", cv2.imencode(".png", drawn)[1].tobytes())
        print(f"{path.name}: {len(frame)} detections")


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "detect.py"))

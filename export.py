"""Export a trained checkpoint: an ONNX model (with its decode), or darknet's .cfg + .weights + .names.

    python export.py --weights runs/exp/best.pt --format onnx --out runs/exp/best.onnx
    python export.py --weights runs/exp/best.pt --format darknet --out runs/exp/kitti   # kitti.cfg/.weights/.names

Both run at the size eval.py runs the checkpoint at (its eval_size, else its img_size). ONNX (needs
requirements-export.txt): input ``images`` (N, 3, H, W) float32 RGB in [0, 1], letterboxed as eval.py does; output
``detections`` (N, K, 5 + C): x1, y1, x2, y2 in input pixels, objectness, class probabilities, before NMS; the input
size and class names are in the file's metadata. darknet: the cfg with the trained classes, anchors and [net] size,
read by darknet and by OpenCV's ``cv2.dnn.readNetFromDarknet``. Existing files are never overwritten.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.errors import UserError, run_cli

FORMATS = ("onnx", "darknet")
ONNX_PACKAGES = ("onnx", "onnxruntime", "onnxscript")  # requirements-export.txt; torch.onnx needs onnx, onnxscript
DARKNET_SUFFIXES = (".cfg", ".weights", ".names")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--weights", required=True, help="checkpoint of this repo (runs/NAME/best.pt)")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="onnx: one .onnx file (model + decode); darknet: .cfg, .weights and .names files")
    parser.add_argument("--out", required=True, type=Path,
                        help="onnx: the .onnx file; darknet: the files' common stem (a .cfg/.weights/.names suffix "
                             "is dropped). Never an existing file")
    return parser


def output_paths(fmt: str, out: Path) -> dict[str, Path]:
    """The files ``--format fmt --out out`` writes, by kind."""
    if out.is_dir():
        raise UserError(f"{out}: is a folder; --out names the output file (darknet: the files' stem, e.g. "
                        f"{out / 'model'})")
    if fmt == "onnx":
        if out.suffix != ".onnx":
            raise UserError(f"{out}: --format onnx writes one .onnx file; name --out NAME.onnx")
        return {"onnx": out}
    stem = out.with_suffix("") if out.suffix in DARKNET_SUFFIXES else out
    return {suffix[1:]: Path(f"{stem}{suffix}") for suffix in DARKNET_SUFFIXES}


def check_outputs(paths: dict[str, Path], weights: str) -> None:
    """Outputs never land on the input, and nothing that exists is overwritten."""
    for path in paths.values():
        if path.resolve() == Path(weights).resolve():
            raise UserError(f"{path}: --out would overwrite the input --weights {weights}; choose another --out")
        if path.exists() or path.is_symlink():
            raise UserError(f"{path}: exists; export never overwrites a file: remove it or choose another --out")


def missing_packages(fmt: str) -> list[str]:
    """The packages ``fmt`` needs that do not import (darknet needs none beyond requirements.txt)."""
    missing = []
    for name in ONNX_PACKAGES if fmt == "onnx" else ():
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    return missing


def main(args) -> None:
    paths = output_paths(args.format, args.out)
    check_outputs(paths, args.weights)
    missing = missing_packages(args.format)
    if missing:
        raise UserError(f"--format {args.format} needs {', '.join(missing)}, not installed: "
                        "pip install -r requirements-export.txt")
    from models import export
    from training import build
    net, cfg, _, _ = build.from_checkpoint(args.weights, device="cpu", channels_last=False)
    net.eval()
    size = build.predict_settings(cfg).size
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "darknet":
        export.write_darknet(net, size, cfg.classes, paths, Path(args.weights).name)
    else:
        write_onnx(net, size, cfg.classes, paths["onnx"], args.weights)
    print(f"{args.weights} ({len(cfg.classes)} classes: {','.join(cfg.classes)}; input {size[0]}x{size[1]}) -> "
          + ", ".join(str(p) for p in paths.values()))


def write_onnx(net, size: tuple[int, int], classes, path: Path, weights: str) -> None:
    """Export, check onnxruntime against PyTorch on random inputs (the difference is printed), write."""
    from models import export
    from utils.io import write_bytes
    model = export.onnx_bytes(net, size, classes, weights)
    difference = export.onnxruntime_difference(net, model, size, weights)
    print(f"onnxruntime vs PyTorch on 3 random inputs: largest difference {difference:.2g} (boxes in input sizes)")
    write_bytes(path, model)


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "export.py"))

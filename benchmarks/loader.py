"""Training-loader throughput (decode + augment + collate) against a raw ``cv2.imread`` loop over the same files.

    python benchmarks/loader.py                                   # synthetic KITTI-size frames in a temp dir
    python benchmarks/loader.py --data ROOT --split train         # a real KITTI layout
    python benchmarks/loader.py --num 64 --workers 0,1,2 --size 416x128 --cache none,ram

The raw loop is the single-core ceiling of decoding alone; ratio = loader images/s / raw images/s, so a ratio near
the worker count means decoding dominates and workers scale. Workers are persistent and one warm-up epoch runs
before timing, so worker start-up is excluded. Prints a Markdown table.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.kitti import IMAGE_DIR, LABEL_DIR, KittiDataset  # noqa: E402
from data.loader import build_train_loader  # noqa: E402

KITTI_FRAME_SIZES = ((1242, 375), (1224, 370))


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--data", type=Path, help="KITTI root; default: a generated synthetic set")
    parser.add_argument("--split", default="train", help="split name or list file under --data")
    parser.add_argument("--num", type=int, default=64, help="frames to generate, or to use from --data")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--size", default="416x128", help="base input size WxH, multiples of 32")
    parser.add_argument("--batch", type=int, default=8, help="batch size")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after one warm-up epoch")
    parser.add_argument("--cache", default="none,ram", help="comma-separated KittiDataset cache modes")
    return parser


def write_noise_frames(root: Path, num: int) -> None:
    """KITTI-size frames: gradient + mild noise + filled rectangles (PNG sizes near real frames), Car labels."""
    rng = np.random.default_rng(0)
    (root / IMAGE_DIR).mkdir(parents=True)
    (root / LABEL_DIR).mkdir(parents=True)
    for i in range(num):
        w, h = KITTI_FRAME_SIZES[i % 2]
        image = (np.linspace(40, 200, w)[None, :, None] + rng.normal(0, 6, (h, w, 3))).clip(0, 255).astype(np.uint8)
        lines = []
        for _ in range(5):
            x1, y1 = int(rng.integers(0, w - 120)), int(rng.integers(100, h - 60))
            x2, y2 = x1 + int(rng.integers(20, 120)), y1 + int(rng.integers(15, 60))
            cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), rng.integers(0, 256, 3).tolist(), -1)
            lines.append(f"Car 0.00 0 0.00 {x1}.00 {y1}.00 {x2}.00 {y2}.00 1.5 1.6 3.9 0 1.5 20 0")
        cv2.imwrite(str(root / IMAGE_DIR / f"{i:06d}.png"), image)
        (root / LABEL_DIR / f"{i:06d}.txt").write_text("\n".join(lines) + "\n")


def prepare_data(args, tmp: Path) -> tuple[Path, str, str]:
    """(root, split, description) of the frames to measure; generates them unless --data is given."""
    if args.data is not None:
        ids = KittiDataset(args.data, args.split).ids[:args.num]
        root, source = args.data, f"{args.data} split {args.split}"
    else:
        root = tmp / "kitti"
        if importlib.util.find_spec("data.synthetic") is not None:
            from data.synthetic import generate
            generate(root, args.num, 0)
            source = "data.synthetic.generate"
        else:
            write_noise_frames(root, args.num)
            source = "noise + rectangles (data/synthetic.py absent)"
        ids = sorted(p.stem for p in (root / IMAGE_DIR).glob("*.png"))[:args.num]
    split = tmp / "bench.txt"
    split.write_text("\n".join(ids) + "\n")
    return root, str(split), f"{len(ids)} frames from {source}"


def raw_imread_rate(paths: list[Path], rounds: int) -> float:
    """Images/s of a bare ``cv2.imread`` loop in this process (OpenCV threads limited to 1, like a worker)."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    start = time.perf_counter()
    for _ in range(rounds):
        for path in paths:
            if cv2.imread(str(path), cv2.IMREAD_COLOR) is None:
                raise RuntimeError(f"{path}: cv2.imread failed")
    elapsed = time.perf_counter() - start
    cv2.setNumThreads(threads)
    return rounds * len(paths) / elapsed


def loader_rate(dataset: KittiDataset, args, size: tuple[int, int], workers: int) -> float:
    """Images/s of the training loader over ``args.epochs`` epochs after one warm-up epoch."""
    loader = build_train_loader(dataset, seed=0, batch_size=args.batch, base_size=size, workers=workers,
                                persistent_workers=workers > 0)
    count = 0
    for epoch in range(args.epochs + 1):
        if epoch == 1:
            start, count = time.perf_counter(), 0
        loader.set_epoch(epoch)
        for batch in loader:
            count += len(batch.ids)
    return count / (time.perf_counter() - start)


def main(args) -> None:
    if args.epochs < 1 or args.num < args.batch:
        raise SystemExit(f"need --epochs >= 1 and --num >= --batch, got {args.epochs} and {args.num} < {args.batch}")
    size = tuple(int(v) for v in args.size.lower().split("x"))
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        root, split, source = prepare_data(args, Path(tmp))
        datasets = {cache: KittiDataset(root, split, cache=cache) for cache in args.cache.split(",")}
        any_dataset = next(iter(datasets.values()))
        raw = raw_imread_rate([any_dataset.image_path(i) for i in range(len(any_dataset))], args.epochs)
        print(f"{source}; input {size[0]}x{size[1]} multi-scale, batch {args.batch}, torch {torch.__version__}, "
              f"OpenCV {cv2.__version__}")
        print(f"raw cv2.imread loop, 1 thread: {raw:.1f} images/s\n")
        print("| cache | workers | images/s | ratio to raw imread |\n|---|---|---|---|")
        for cache, dataset in datasets.items():
            for w in workers:
                rate = loader_rate(dataset, args, size, w)
                print(f"| {cache} | {w} | {rate:.1f} | {rate / raw:.2f} |", flush=True)


if __name__ == "__main__":
    main(get_args_parser().parse_args())

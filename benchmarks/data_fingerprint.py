"""Cost of the data's identity (data/identity.py: the sha256 of every split list, image and label a run reads), cold
and with the file-hash cache, and its estimate for the full KITTI training set (7,481 frames).

    python benchmarks/data_fingerprint.py --data /path/to/kitti         # its train and val splits
    python benchmarks/data_fingerprint.py --smoke                       # a generated 8-frame set (CI)

cold: every file read and hashed. The files are read once untimed first, so they come from the page cache: this is
the hashing cost, not the disk's (a first run after a reboot adds reading the bytes from disk). cached: the cache
holds every file, so each costs a stat and a lookup, plus loading the cache. Medians of --repeats. The estimates for
7,481 frames scale cold by bytes (the official table's total size over the bytes hashed here) and cached by file
count (14,962 images and labels over the frame files here).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data.identity import dataset_files, identify  # noqa: E402
from data.kitti import KittiDataset  # noqa: E402
from data.kitti_official import read_table  # noqa: E402
from data.synthetic import generate  # noqa: E402
from utils.file_hashes import FileHashCache  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--data", default=None, help="KITTI root (training/image_2, training/label_2, ImageSets)")
    parser.add_argument("--splits", default="train,val", help="comma-separated split names of the run measured")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each (median taken)")
    parser.add_argument("--smoke", action="store_true", help="a generated 8-frame set, 2 repeats (CI)")
    return parser


def median_s(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(root: Path, splits: list[str], repeats: int, cache_dir: Path) -> dict:
    """Seconds of ``identify`` without a cache (cold) and with a full one (cached), and what was hashed."""
    files = dataset_files(*(KittiDataset(root, s, cache="none") for s in splits))
    rows = identify(root, files, FileHashCache(None)).rows  # untimed: the page cache holds the files after it
    cache = cache_dir / "file_sha256.json"
    filled = FileHashCache(cache)
    identify(root, files, filled)
    if not cache.is_file() or len(filled.entries) != len(files):  # files modified in the last seconds are not kept
        raise RuntimeError(f"the cache kept {len(filled.entries)} of {len(files)} files: cached would not be cached")
    cold = median_s(lambda: identify(root, files, FileHashCache(None)), repeats)
    cached = median_s(lambda: identify(root, files, FileHashCache(cache)), repeats)
    frame_rows = [r for r in rows if r[0].startswith("training/")]
    return {"files": len(frame_rows), "bytes": sum(r[2] for r in frame_rows), "cold_s": cold, "cached_s": cached}


def report(m: dict, label: str, repeats: int) -> str:
    table = read_table()
    full_bytes, full_files = sum(size for _, size in table.values()), len(table)
    cold_full = m["cold_s"] * full_bytes / m["bytes"]
    cached_full = m["cached_s"] * full_files / m["files"]
    return "\n".join([
        f"{label}: {m['files']} image and label files, {m['bytes'] / 2**20:.1f} MiB; median of {repeats}, "
        f"{os.cpu_count()} CPUs",
        "| data | files | MiB | cold s | MB/s | cached s | 7,481 frames cold s (est.) | cached s (est.) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {label} | {m['files']} | {m['bytes'] / 2**20:.1f} | {m['cold_s']:.3f} | "
        f"{m['bytes'] / m['cold_s'] / 1e6:.0f} | {m['cached_s']:.4f} | {cold_full:.1f} | {cached_full:.2f} |",
        f"(7,481 frames: {full_files:,} files, {full_bytes / 2**30:.2f} GiB in the official table)"])


def main(args: argparse.Namespace) -> None:
    repeats = 2 if args.smoke else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:
            root = Path(tmp) / "synthetic"
            generate(root, 8, seed=0)
            old = time.time_ns() - 60 * 10**9  # older than the cache's racy window, as a real dataset is
            for path in root.rglob("*"):
                os.utime(path, ns=(old, old))
        elif args.data:
            root = Path(args.data)
        else:
            get_args_parser().error("give --data ROOT or --smoke")
        m = measure(root, args.splits.split(","), repeats, Path(tmp))
    print(report(m, "smoke (8 synthetic frames)" if args.smoke else str(root), repeats))


if __name__ == "__main__":
    main(get_args_parser().parse_args())

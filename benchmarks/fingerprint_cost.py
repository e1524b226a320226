"""Cost of a weights fingerprint: host sha256 (``weights_sha256``) vs on-device integer hash (``device_fingerprint``).

    python benchmarks/fingerprint_cost.py                                   # cfg/yolov3-small-kitti.cfg on CPU
    python benchmarks/fingerprint_cost.py --cfg cfg/yolov3-kitti.cfg --device cuda --repeats 20

Builds ``Darknet(cfg, num_classes=8)`` on the device (seeded init; the values do not matter for the cost), runs each
fingerprint once untimed (allocator, CUDA context), then times ``repeats`` calls of each on the same
``state_dict`` (CUDA synchronised before every clock read) and prints a Markdown table: state_dict elements and
MiB, median milliseconds of each, and the ratio sha256 / device.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.darknet import Darknet  # noqa: E402
from utils.fingerprint import device_fingerprint, weights_sha256  # noqa: E402


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=add_help)
    parser.add_argument("--cfg", default="cfg/yolov3-small-kitti.cfg", help="darknet cfg of the model")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls of each fingerprint (median taken)")
    parser.add_argument("--device", default="cpu", help="torch device of the model, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    return parser


def median_ms(fn, device: torch.device, repeats: int) -> tuple[float, str]:
    """(median wall milliseconds over ``repeats`` calls, the last result); one untimed call first."""
    result = fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # queued work must not be billed to the fingerprint
        start = time.perf_counter()
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # both return host strings, but be explicit about what is timed
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), result


def main(args: argparse.Namespace) -> None:
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Darknet(args.cfg, num_classes=8).to(device)
    state = model.state_dict()
    elements = sum(t.numel() for t in state.values())
    mib = sum(t.numel() * t.element_size() for t in state.values()) / 2**20
    sha_ms, sha = median_ms(lambda: weights_sha256(state), device, args.repeats)
    dev_ms, dev = median_ms(lambda: device_fingerprint(state.values()), device, args.repeats)
    print(f"{args.cfg} on {device} ({torch.get_num_threads()} CPU threads), torch {torch.__version__}, "
          f"median of {args.repeats}; sha256 {sha[:16]}..., device {dev}")
    print("| cfg | tensors | elements | MiB | weights_sha256 ms | device_fingerprint ms | sha256 / device |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {Path(args.cfg).name} | {len(state)} | {elements:,} | {mib:.1f} | {sha_ms:.1f} | {dev_ms:.1f} | "
          f"{sha_ms / dev_ms:.2f} |")


if __name__ == "__main__":
    main(get_args_parser().parse_args())

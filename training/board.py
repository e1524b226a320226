"""TensorBoard event files in the run directory, mirroring metrics.jsonl, when tensorboard is installed.

metrics.jsonl stays the record (it holds the loss bits and parameter fingerprints); the event files are a view of it
for ``tensorboard --logdir runs``. Writing them touches no RNG, so it cannot change a run's bits.
Scalars: ``train/<term>`` (box, obj, cls, total), ``train/lr``, ``train/images_per_s`` per optimizer step;
``eval/headline`` and every number of the evaluation (``eval/coco/mAP50``, ``eval/kitti/...``) per evaluation.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from utils.errors import interrupts_deferred

TRAIN_KEYS = ("total", "box", "obj", "cls", "lr", "images_per_s")


def available() -> bool:
    """True when the tensorboard package (needed by torch.utils.tensorboard) is installed."""
    return importlib.util.find_spec("tensorboard") is not None


class Board:
    """A metrics sink with MetricsLog's interface (write, sync, close) that writes TensorBoard scalars. Each call
    holds Ctrl-C and SIGTERM back until it returns (utils.errors.interrupts_deferred): an interrupt inside
    tensorboard's writer queue would leave close() waiting forever."""

    def __init__(self, run_dir: str | Path):
        from torch.utils.tensorboard import (
            SummaryWriter,  # imported here: tensorboard is optional
        )
        self.writer = SummaryWriter(log_dir=str(run_dir))

    def write(self, record: dict) -> None:
        step = record["step"]
        if record.get("type") == "eval":
            scalars = flatten(record, "eval", skip=("type", "step", "epoch"))
        else:
            scalars = [(f"train/{key}", record[key]) for key in TRAIN_KEYS]
        with interrupts_deferred():
            for tag, value in scalars:
                self.writer.add_scalar(tag, value, step)

    def sync(self) -> None:
        with interrupts_deferred():
            self.writer.flush()

    def close(self) -> None:
        with interrupts_deferred():
            self.writer.close()


def flatten(tree: dict, prefix: str, skip: tuple = ()) -> list[tuple[str, float]]:
    """Numeric leaves of a nested dict as (``prefix/key/subkey``, value), in insertion order; bools and text skipped."""
    out = []
    for key, value in tree.items():
        if key in skip:
            continue
        tag = f"{prefix}/{key}"
        if isinstance(value, dict):
            out.extend(flatten(value, tag))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append((tag, float(value)))
    return out


def open_board(run_dir: str | Path) -> Board | None:
    """A Board for ``run_dir``, or None when tensorboard is not installed (then only metrics.jsonl is written)."""
    return Board(run_dir) if available() else None

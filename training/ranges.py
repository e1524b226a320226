"""The range of every numeric config key, in one place: checked wherever a value comes from (a preset, a flag of
train.py, eval.py or detect.py, a checkpoint's config) and stated in each flag's --help.

A value outside its range is an error naming the key or flag, the range and the value; NaN and infinities are
outside every range.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from utils.errors import UserError

SEED_END = 2**63  # seeds are drawn into int64 generators


@dataclass(frozen=True)
class Range:
    """``low <= value <= high`` (``<`` on an open end); None: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def holds(self, value) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self, name: str) -> str:
        """``0 <= momentum < 1``, ``epochs >= 1``, ``lr > 0``."""
        if self.low is None or self.high is None:
            bound, sign = (self.low, ">") if self.high is None else (self.high, "<")
            return f"{name} {sign}{'' if (self.low_open if sign == '>' else self.high_open) else '='} {_num(bound)}"
        return (f"{_num(self.low)} {'<' if self.low_open else '<='} {name} {'<' if self.high_open else '<='} "
                f"{_num(self.high)}")


def _num(value: float) -> str:
    return "2**63" if value == SEED_END else f"{value:g}"


AT_LEAST_1, AT_LEAST_0 = Range(1), Range(0)
PROBABILITY = Range(0, 1)
SEED, OWN_SEED = Range(0, SEED_END, high_open=True), Range(-1, SEED_END, high_open=True)

# Tuple keys: the range of each element.
RANGES = {
    "weights_cutoff": AT_LEAST_0, "synthetic_num": Range(2), "synthetic_seed": SEED,
    "img_size": Range(32), "scale_every": AT_LEAST_1, "flip_p": PROBABILITY, "hsv": PROBABILITY,
    "scale": Range(0, low_open=True), "translate": Range(0, 0.5),
    "epochs": AT_LEAST_1, "batch_size": AT_LEAST_1, "accumulate": AT_LEAST_1, "lr": Range(0, low_open=True),
    "momentum": Range(0, 1, high_open=True), "weight_decay": Range(0, 1, high_open=True),
    "burn_in_images": AT_LEAST_0, "lr_steps": Range(0, 1, low_open=True, high_open=True), "lr_final": PROBABILITY,
    "seed": SEED, "seed_init": OWN_SEED, "seed_order": OWN_SEED, "seed_aug": OWN_SEED,
    "threads": AT_LEAST_1, "workers": AT_LEAST_0,
    "eval_every": AT_LEAST_0, "eval_size": Range(32), "conf_thres": PROBABILITY, "iou_thres": PROBABILITY,
    "max_det": AT_LEAST_1,
    "checkpoint_every": AT_LEAST_0, "checkpoint_epochs": AT_LEAST_1, "fingerprint_every": AT_LEAST_1,
    "max_steps": AT_LEAST_0,
}


def check(name: str, value, where: str):
    """``value`` (a number, or a tuple of them) if it lies in ``name``'s range, else UserError naming ``where``
    (a flag, a preset file, "config"), the key, the range and the value."""
    span = RANGES.get(name)
    items = value if isinstance(value, (tuple, list)) else (value,)
    if span is not None and not all(span.holds(v) for v in items):
        each = ", each value" if isinstance(value, (tuple, list)) else ""
        raise UserError(f"{where}: {name} out of range ({span.describe(name)}{each}), got {value!r}")
    return value


def describe(name: str) -> str:
    """The range for --help: ``range: 0 <= momentum < 1``."""
    span = RANGES.get(name)
    return f"range: {span.describe(name)}" if span else ""


def check_flags(args, names) -> None:
    """Check the given (non-None) flags of a CLI whose names are config keys (eval.py's --conf-thres, say)."""
    for name in names:
        value = getattr(args, name)
        if value is not None:
            check(name, value, "--" + name.replace("_", "-"))

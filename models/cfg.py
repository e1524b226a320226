"""Darknet .cfg files -> typed blocks: the parser and the schema of every block type and key it accepts.

A cfg is a list of ``[section]`` blocks of ``key=value`` lines (``#`` and ``;`` start comments, spaces around ``=``
and after commas are allowed, section names repeat). Every error names the file, the line and the offending text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from models.layers import ACTIVATIONS
from utils.errors import UserError

REQUIRED = object()  # schema default of a key that the cfg must set


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(","))


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.split(","))


def _activation(text: str) -> str:
    if text not in ACTIVATIONS:
        raise UserError(text)
    return text


# Keys each block type accepts: key -> (converter, default). Defaults follow darknet's parser.c; None means no
# fixed default (derived from other keys by the builders, or unused). REQUIRED keys have no default that makes sense
# (darknet's filters=1 would silently build a 1-channel layer). [net] lists darknet's training keys so upstream cfgs
# parse; they are kept in Darknet.net_options and never acted on (training settings live in the run config).
_NET_FLOATS = ("learning_rate", "momentum", "decay", "B1", "B2", "eps", "max_crop", "min_crop", "max_ratio",
               "min_ratio", "clip", "angle", "aspect", "saturation", "exposure", "hue", "power", "scale", "gamma")
_NET_INTS = ("batch", "subdivisions", "time_steps", "notruth", "random", "adam", "inputs", "center", "burn_in",
             "step", "max_batches")
SCHEMA = {
    "net": {"width": (int, REQUIRED), "height": (int, REQUIRED), "channels": (int, 3), "policy": (str, "constant"),
            "steps": (_ints, None), "scales": (_floats, None),
            **{k: (float, None) for k in _NET_FLOATS}, **{k: (int, None) for k in _NET_INTS}},
    "convolutional": {"batch_normalize": (int, 0), "filters": (int, REQUIRED), "size": (int, 1), "stride": (int, 1),
                      "pad": (int, 0), "padding": (int, 0), "activation": (_activation, "logistic")},
    "shortcut": {"from": (int, REQUIRED), "activation": (_activation, "linear")},
    "route": {"layers": (_ints, REQUIRED)},
    "upsample": {"stride": (int, 2)},
    "maxpool": {"size": (int, None), "stride": (int, 1), "padding": (int, None)},
    "yolo": {"mask": (_ints, None), "anchors": (_floats, REQUIRED), "classes": (int, 20), "num": (int, 1),
             "jitter": (float, 0.2), "ignore_thresh": (float, 0.5), "truth_thresh": (float, 1.0), "random": (int, 0)},
}


@dataclass(frozen=True)
class Block:
    """One cfg section: its type, typed options as written, and where each came from (for error messages)."""

    type: str
    path: str
    line: int  # 1-based line of the [section] header
    options: dict = field(default_factory=dict)  # key -> int | float | str | tuple
    key_lines: dict = field(default_factory=dict)  # key -> 1-based line
    raw: dict = field(default_factory=dict)  # key -> value text as written

    def where(self, key: str | None = None) -> str:
        """``file:line`` of ``key`` (or of the section header)."""
        return f"{self.path}:{self.key_lines.get(key, self.line)}"

    def get(self, key: str):
        """Typed value of ``key``, else the schema default; raises ValueError for a missing required key."""
        if key in self.options:
            return self.options[key]
        default = SCHEMA[self.type][key][1]
        if default is REQUIRED:
            raise UserError(f"{self.where()}: [{self.type}] is missing the required key {key!r}")
        return default

    def error(self, key: str | None, message: str) -> UserError:
        """UserError ``file:line: [type] key = value: message`` naming the offending text."""
        text = f" {key} = {self.raw[key]}:" if key in self.raw else ""
        return UserError(f"{self.where(key)}: [{self.type}]{text} {message}")


def parse_cfg(path: str | Path) -> list[Block]:
    """Read a darknet cfg into blocks, ``[net]`` first, checking section names, keys and value types.

    Comments start with ``#`` or ``;`` (whole-line or trailing); spaces around ``=`` and list items are ignored.
    Raises ValueError ``file:line: ...`` quoting the offending text.
    """
    path = str(path)
    blocks: list[Block] = []
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for number, line in enumerate(lines, start=1):
        text = re.split(r"[#;]", line, maxsplit=1)[0].strip()
        if not text:
            continue
        if text.startswith("[") and text.endswith("]"):
            kind = text[1:-1].strip()
            if kind not in SCHEMA:
                raise UserError(f"{path}:{number}: unknown block type {text!r} (expected one of "
                                 f"{', '.join(f'[{k}]' for k in SCHEMA)})")
            blocks.append(Block(kind, path, number))
        elif "=" in text and blocks:
            key, value = (part.strip() for part in text.split("=", 1))
            _set_option(blocks[-1], number, key, value)
        else:
            raise UserError(f"{path}:{number}: malformed line {line.strip()!r} (expected '[section]' or "
                             "'key=value' inside a section)")
    if not blocks:
        raise UserError(f"{path}: no sections; a cfg starts with [net]")
    misplaced = [b for i, b in enumerate(blocks) if (b.type == "net") != (i == 0)]
    if misplaced:
        raise UserError(f"{path}:{misplaced[0].line}: [{misplaced[0].type}]: a cfg has exactly one [net] section, "
                         "and it comes first")
    return blocks


def _set_option(block: Block, number: int, key: str, value: str) -> None:
    """Type-check ``key = value`` at ``number`` against the schema and record it in ``block``."""
    schema = SCHEMA[block.type]
    where = f"{block.path}:{number}"
    if key not in schema:
        raise UserError(f"{where}: unknown key {key!r} in [{block.type}] (expected one of {', '.join(schema)})")
    if key in block.options:
        raise UserError(f"{where}: duplicate key {key!r} in [{block.type}] (first at line {block.key_lines[key]})")
    converter = schema[key][0]
    try:
        block.options[key] = converter(value)
    except ValueError:
        raise UserError(f"{where}: bad value {key} = {value!r} in [{block.type}] (expected "
                         f"{_TYPE_NAMES[converter]})") from None
    block.key_lines[key] = number
    block.raw[key] = value


_TYPE_NAMES = {int: "an integer", float: "a number", _ints: "comma-separated integers",
               _floats: "comma-separated numbers", _activation: f"one of {', '.join(ACTIVATIONS)}"}

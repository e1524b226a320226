"""Darknet binary ``.weights`` files, read into and written from a Darknet model.

Layout (little-endian): int32 major, minor, revision; ``seen`` (images trained on) as int64 when
``major * 10 + minor >= 2``, else int32; then float32 values for each [convolutional] layer in cfg order:
with batch norm ``bn bias (beta), bn weight (gamma), running_mean, running_var, conv weight``, without it
``conv bias, conv weight``. Nothing else is stored, so the cfg must match the file exactly.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from models.darknet import Darknet
from models.layers import ConvBNAct
from utils.errors import UserError
from utils.io import atomic_open

VERSION = (0, 2, 0)  # what darknet itself writes: int64 `seen`
_MAX_VERSION_PART = 1000  # darknet treats larger major/minor values as garbage, and so do we


@dataclass(frozen=True)
class WeightsHeader:
    """The header of a .weights file: darknet's format version and training progress."""

    major: int
    minor: int
    revision: int
    seen: int  # images the network was trained on


def _tensors(model: Darknet, cutoff: int | None) -> list[Tensor]:
    """The tensors stored for layers ``[0, cutoff)`` (all when None), in file order."""
    if cutoff is not None and not 0 <= cutoff <= len(model.module_list):
        raise UserError(f"cutoff must lie in 0..{len(model.module_list)}, got {cutoff}")
    tensors = []
    for layer in list(model.module_list)[:cutoff]:
        if not isinstance(layer, ConvBNAct):
            continue
        if hasattr(layer, "bn"):
            tensors += [layer.bn.bias, layer.bn.weight, layer.bn.running_mean, layer.bn.running_var]
        else:
            tensors.append(layer.conv.bias)
        tensors.append(layer.conv.weight)
    return tensors


def _read_header(data: np.ndarray, path: str) -> tuple[WeightsHeader, int]:
    """Parse the header at the start of ``data`` (the file's uint8 bytes); returns it and its size in bytes."""
    if len(data) < 16:
        raise UserError(f"{path}: bad header: file has {len(data)} bytes, a darknet header needs at least 16")
    major, minor, revision = (int(v) for v in data[:12].view("<i4"))
    if not (0 <= major < _MAX_VERSION_PART and 0 <= minor < _MAX_VERSION_PART and revision >= 0):
        raise UserError(f"{path}: bad header: nonsense version {major}.{minor}.{revision} (not a darknet "
                         ".weights file?)")
    seen_type = "<i8" if major * 10 + minor >= 2 else "<i4"
    size = 12 + np.dtype(seen_type).itemsize
    if len(data) < size:
        raise UserError(f"{path}: bad header: version {major}.{minor}.{revision} needs {size} header bytes, "
                         f"file has {len(data)}")
    seen = int(data[12:size].view(seen_type)[0])
    return WeightsHeader(major, minor, revision, seen), size


class FileFit(NamedTuple):
    """How a ``.weights`` file fits a cfg: it holds layers ``[0, cutoff)`` of the model built with ``num_classes``
    (the model's own class count, or another one when the file is a whole model of the same cfg trained on
    another class list, e.g. darknet's 80-class COCO weights for an 8-class KITTI cfg)."""

    cutoff: int
    num_classes: int


def fit_file(model: Darknet, path: str | Path) -> FileFit:
    """How a ``.weights`` file fits ``model``'s cfg, read from its size.

    First as a prefix at the model's class count: the largest c such that layers [0, c) need exactly the file's
    float count (a backbone such as darknet53.conv.74, or the whole model). Else as the whole model at another
    class count C: only the convolutions feeding a [yolo] block depend on C, each by ``len(mask) * (floats per
    filter)`` values per class, so C follows from the difference in size.

    Raises UserError naming the file, its count, and the counts the cfg allows around it.
    """
    found = _float_count(path)
    counts = [sum(t.numel() for t in _tensors(model, c)) for c in range(len(model.module_list) + 1)]
    matches = [c for c, n in enumerate(counts) if n == found]
    if matches:
        return FileFit(matches[-1], model.num_classes)
    heads = [(model.module_list[i], head) for i, head in zip(model.head_conv_layers, model.heads)]
    per_class = sum(len(head.anchors) * _floats_per_filter(conv) for conv, head in heads if isinstance(conv, ConvBNAct))
    classes, rest = divmod(found - counts[-1], per_class) if per_class else (0, 1)
    if not rest and model.num_classes + classes >= 1:
        return FileFit(len(model.module_list), model.num_classes + classes)
    below = max((n for n in counts if n < found), default=0)
    above = min((n for n in counts if n > found), default=None)
    raise UserError(f"{path}: {found:,} float32 values after the header fit no prefix of {model.cfg_path} and no "
                    f"class count: the whole model needs {counts[-1]:,} ({counts[-1] + per_class:,} with one more "
                    f"class), the nearest prefixes {below:,}" + (f" and {above:,}" if above else "")
                    + "; use the .weights file of this cfg (or its backbone)")


def _float_count(path: str | Path) -> int:
    """float32 values after the header of a ``.weights`` file (header checked)."""
    with open(path, "rb") as f:
        head = np.frombuffer(f.read(20), dtype=np.uint8)
    _, offset = _read_header(head, str(path))
    return (Path(path).stat().st_size - offset) // 4


def _floats_per_filter(layer: ConvBNAct) -> int:
    """Values one output filter of a [convolutional] stores: its kernel, then 4 BN values or 1 bias."""
    conv = layer.conv
    return conv.in_channels // conv.groups * conv.kernel_size[0] * conv.kernel_size[1] + (4 if hasattr(layer, "bn")
                                                                                            else 1)


def load_darknet_weights(model: Darknet, path: str | Path, cutoff: int | None = None) -> WeightsHeader:
    """Copy a ``.weights`` file into ``model`` (in place) and return its header.

    Args:
        cutoff: the file holds only layers ``[0, cutoff)`` (e.g. 75 for darknet53.conv.74); None = all layers.
    Raises:
        ValueError: bad header, or a file holding more or fewer floats than the cfg needs (both counts named).
    """
    path = str(path)
    data = np.fromfile(path, dtype=np.uint8)  # writable, so the floats below are used without another copy
    header, offset = _read_header(data, path)
    tensors = _tensors(model, cutoff)
    expected = sum(t.numel() for t in tensors)
    found, remainder = divmod(len(data) - offset, 4)
    if found != expected or remainder:
        raise UserError(f"{path}: expected {expected:,} float32 values after the {offset}-byte header for "
                         f"{'all' if cutoff is None else f'the first {cutoff}'} layers, found {found:,}"
                         f"{f' and {remainder} stray bytes' if remainder else ''}")
    values = torch.from_numpy(data[offset:].view("<f4").astype(np.float32, copy=False))
    with torch.no_grad():
        for tensor, chunk in zip(tensors, values.split([t.numel() for t in tensors])):
            tensor.copy_(chunk.view_as(tensor))
    return header


def save_darknet_weights(model: Darknet, path: str | Path, cutoff: int | None = None,
                         header: WeightsHeader = WeightsHeader(*VERSION, seen=0)) -> None:
    """Write layers ``[0, cutoff)`` of ``model`` (all when None) as a darknet ``.weights`` file with ``header``
    (default: version 0.2.0, as darknet writes, and ``seen`` 0). Saving a loaded model with the header that
    ``load_darknet_weights`` returned gives back the file it was loaded from, byte for byte.

    Written atomically (utils.io.atomic_open): a crash never leaves a truncated file behind.
    """
    tensors = _tensors(model, cutoff)
    seen_type = "<i8" if header.major * 10 + header.minor >= 2 else "<i4"
    raw = (np.array([header.major, header.minor, header.revision], "<i4").tobytes()
           + np.array([header.seen], seen_type).tobytes())
    with atomic_open(path, "wb") as f:
        f.write(raw)
        for tensor in tensors:
            f.write(tensor.detach().to("cpu", torch.float32).contiguous().numpy().astype("<f4").tobytes())

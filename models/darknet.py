"""Darknet cfg files -> PyTorch modules.

A cfg is a list of ``[section]`` blocks of ``key=value`` lines; the first is ``[net]`` (input size and darknet's
training settings), each later block is one layer, numbered from 0. ``[route]`` and ``[shortcut]`` name earlier
layers by absolute index or by a negative offset from themselves. The model returns the raw input of every
``[yolo]`` block; decoding (models/head.py) and the loss (models/loss.py) use the metadata in ``Darknet.heads``.

    model = Darknet("cfg/yolov3-kitti.cfg")
    outputs = model(images)  # images (N, 3, 384, 1248) -> [(N, 39, 12, 39), (N, 39, 24, 78), (N, 39, 48, 156)]
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from models.cfg import Block, parse_cfg
from models.layers import ConvBNAct, MaxPool, Route, Shortcut, Upsample

UPSAMPLE_KINDS = {"deterministic": "deterministic (expand+reshape)", "interpolate": "F.interpolate nearest"}


@dataclass(frozen=True)
class YoloHead:
    """What the loss and the decoder need to know about one [yolo] block; sizes in input pixels at the cfg's size.

    Attributes:
        anchors: (len(mask), 2) anchor (width, height) pairs this head predicts, in mask order.
        stride: input pixels per grid cell (input size / head grid size), from the layers' strides.
        num_classes: C; the head output has len(mask) * (5 + C) channels.
        ignore_thresh: predictions whose best IoU with any truth exceeds this get no no-object loss.
        truth_thresh: darknet's IoU above which a prediction is treated as a positive (1 = off).
        all_anchors: every anchor pair of the block, indexed by mask.
        mask: indices into all_anchors of this head's anchors.
    """

    anchors: tuple[tuple[float, float], ...]
    stride: int
    num_classes: int
    ignore_thresh: float
    truth_thresh: float
    all_anchors: tuple[tuple[float, float], ...]
    mask: tuple[int, ...]


@dataclass
class _Build:
    """State while turning blocks into layers: each built layer's output channels and stride, and what to keep."""

    in_channels: int
    deterministic: bool
    filters: dict[int, int]  # layer index -> filters forced by num_classes (the convs feeding a [yolo])
    num_classes: int | None
    channels: list[int] = field(default_factory=list)
    strides: list[int] = field(default_factory=list)  # input pixels per output cell
    saved: set[int] = field(default_factory=set)  # layers that a later route/shortcut reads
    heads: list[YoloHead] = field(default_factory=list)

    def previous(self) -> tuple[int, int]:
        """(channels, stride) of the input of the layer being built."""
        return (self.channels[-1], self.strides[-1]) if self.channels else (self.in_channels, 1)

    def source(self, block: Block, key: str, ref: int) -> int:
        """Absolute index of layer ``ref`` (absolute, or negative = relative), checked to exist before this one."""
        here = len(self.channels)
        index = ref if ref >= 0 else here + ref
        if not 0 <= index < here:
            raise block.error(key, f"layer {index} does not exist before layer {here} (valid: 0..{here - 1})")
        self.saved.add(index)
        return index


def _positive(block: Block, *keys: str) -> None:
    for key in keys:
        if block.get(key) is not None and block.get(key) < 1:
            raise block.error(key, "must be a positive integer")


def _conv(block: Block, state: _Build):
    channels, stride = state.previous()
    _positive(block, "filters", "size", "stride")
    size, step, activation = block.get("size"), block.get("stride"), block.get("activation")
    padding = size // 2 if block.get("pad") else block.get("padding")  # darknet: pad=1 means "same" padding
    filters = state.filters.get(len(state.channels), block.get("filters"))
    batch_norm = bool(block.get("batch_normalize"))
    module = ConvBNAct(channels, filters, size, step, padding, batch_norm, activation)
    return module, filters, stride * step, f"{size}x{size}/{step} {activation}{' bn' if batch_norm else ''}"


def _shortcut(block: Block, state: _Build):
    channels, stride = state.previous()
    index = state.source(block, "from", block.get("from"))
    if (state.channels[index], state.strides[index]) != (channels, stride):
        raise block.error("from", f"layer {index} has {state.channels[index]} channels at stride "
                                  f"{state.strides[index]} but the previous layer has {channels} at stride {stride}; "
                                  "a shortcut adds tensors of the same shape")
    return Shortcut(index, block.get("activation")), channels, stride, f"from {index}"


def _route(block: Block, state: _Build):
    sources = tuple(state.source(block, "layers", ref) for ref in block.get("layers"))
    strides = sorted({state.strides[i] for i in sources})
    if len(strides) > 1:
        raise block.error("layers", f"concatenates layers of different strides {strides}")
    channels = sum(state.channels[i] for i in sources)
    return Route(sources), channels, strides[0], "layers " + ", ".join(map(str, sources))


def _upsample(block: Block, state: _Build):
    channels, stride = state.previous()
    scale = block.get("stride")
    if scale < 1 or stride % scale:
        raise block.error("stride", f"must be a positive integer dividing the input's stride {stride}")
    return Upsample(scale, state.deterministic), channels, stride // scale, f"x{scale}"


def _maxpool(block: Block, state: _Build):
    channels, stride = state.previous()
    _positive(block, "stride", "size")
    step = block.get("stride")
    size = block.options.get("size", step)
    padding = size - 1 if block.get("padding") is None else block.get("padding")
    return MaxPool(size, step, padding), channels, stride * step, f"{size}x{size}/{step}"


def _yolo_mask(block: Block) -> tuple[int, ...]:
    """The block's mask; darknet's default (no mask) is every anchor."""
    mask = block.get("mask")
    return tuple(range(block.get("num"))) if mask is None else mask


def _yolo(block: Block, state: _Build):
    channels, stride = state.previous()
    _positive(block, "num", "classes")
    anchors, num, mask = block.get("anchors"), block.get("num"), _yolo_mask(block)
    classes = block.get("classes") if state.num_classes is None else state.num_classes
    if len(anchors) != 2 * num:
        raise block.error("anchors", f"has {len(anchors)} numbers but num = {num} needs {2 * num}")
    if not all(0 <= m < num for m in mask):
        raise block.error("mask", f"indices must lie in 0..{num - 1}")
    if block.get("truth_thresh") < 1:  # darknet's extra positives above truth_thresh; every YOLOv3 cfg uses 1 (off)
        raise block.error("truth_thresh", "values below 1 are not implemented by models/loss.py (use 1)")
    if channels != len(mask) * (5 + classes):
        raise block.error(None, f"input has {channels} channels, expected len(mask) * (5 + classes) = "
                                f"{len(mask) * (5 + classes)} (the filters of the [convolutional] before it)")
    pairs = tuple(zip(anchors[0::2], anchors[1::2]))
    state.heads.append(YoloHead(tuple(pairs[m] for m in mask), stride, classes, block.get("ignore_thresh"),
                                block.get("truth_thresh"), pairs, mask))
    return nn.Identity(), channels, stride, f"mask {','.join(map(str, mask))} classes {classes}"


# Each builder: (block, state) -> (module, output channels, output stride, details for the summary).
_BUILDERS = {"convolutional": _conv, "shortcut": _shortcut, "route": _route, "upsample": _upsample,
             "maxpool": _maxpool, "yolo": _yolo}


def _scaled(head: YoloHead, sx: float, sy: float) -> YoloHead:
    """``head`` with its anchors (pixels) scaled by sx on widths and sy on heights."""
    if (sx, sy) == (1.0, 1.0):
        return head
    return dataclasses.replace(head, anchors=tuple((w * sx, h * sy) for w, h in head.anchors),
                               all_anchors=tuple((w * sx, h * sy) for w, h in head.all_anchors))


def _head_filters(layers: list[Block], num_classes: int | None) -> dict[int, int]:
    """Layer index -> filters for each [convolutional] directly feeding a [yolo], when num_classes overrides."""
    if num_classes is None:
        return {}
    return {i - 1: len(_yolo_mask(b)) * (5 + num_classes) for i, b in enumerate(layers)
            if b.type == "yolo" and i > 0 and layers[i - 1].type == "convolutional"}


class Darknet(nn.Module):
    """A darknet cfg as a module returning the raw input of every [yolo] block.

    Args:
        cfg_path: darknet cfg file.
        num_classes: overrides ``classes`` of every [yolo] and the filters of the convolution feeding it.
        upsample: "deterministic" (expand+reshape, bitwise reproducible backward) or "interpolate" (F.interpolate).
        input_size: (W, H) the model is trained at. The cfg's anchors are pixels at its [net] size; they are
            scaled per axis to this size, so a preset that trains the cfg at another resolution keeps their
            meaning. (Multi-scale training keeps them fixed in pixels around this size, as darknet does.)
    Attributes:
        heads: one YoloHead per [yolo] block, in output order, anchors in pixels of ``input_size``.
        num_classes: C, shared by all heads.
        input_size: (width, height) the anchors are for: the argument, else [net]'s (the repo's (W, H) order).
        cfg_size: (width, height) of [net].
        in_channels: input channels from [net].
        net_options: every [net] key as written (darknet's training settings are kept, never acted on).
    """

    def __init__(self, cfg_path: str | Path, num_classes: int | None = None, upsample: str = "deterministic",
                 input_size: tuple[int, int] | None = None):
        super().__init__()
        if upsample not in UPSAMPLE_KINDS:
            raise ValueError(f"upsample must be one of {', '.join(UPSAMPLE_KINDS)}, got {upsample!r}")
        if num_classes is not None and num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        net, *layers = parse_cfg(cfg_path)
        state = _Build(net.get("channels"), upsample == "deterministic", _head_filters(layers, num_classes),
                       num_classes)
        modules, self._rows = [], []
        for i, block in enumerate(layers):
            module, channels, stride, details = _BUILDERS[block.type](block, state)
            modules.append(module)
            state.channels.append(channels)
            state.strides.append(stride)
            self._rows.append((i, block.type, channels, stride, details))
        if len({h.num_classes for h in state.heads}) != 1:
            raise ValueError(f"{cfg_path}: a cfg needs [yolo] blocks that share one classes value, found classes "
                             f"{sorted({h.num_classes for h in state.heads})} (num_classes overrides them all)")
        self.module_list = nn.ModuleList(modules)
        self.cfg_size = (net.get("width"), net.get("height"))
        self.input_size = tuple(input_size) if input_size else self.cfg_size
        self.heads = tuple(_scaled(h, self.input_size[0] / self.cfg_size[0], self.input_size[1] / self.cfg_size[1])
                           for h in state.heads)
        self.num_classes = self.heads[0].num_classes
        self.in_channels = net.get("channels")
        self.net_options = dict(net.options)
        self.upsample = upsample
        self.cfg_path = str(cfg_path)
        self.max_stride = max(state.strides)
        self._saved = frozenset(state.saved)
        self._head_layers = frozenset(i for i, block in enumerate(layers) if block.type == "yolo")

    @property
    def head_conv_layers(self) -> tuple[int, ...]:
        """Indices of the convolutions feeding a [yolo] block (their filters depend on the class count)."""
        return tuple(sorted(i - 1 for i in self._head_layers))

    def forward(self, x: Tensor) -> list[Tensor]:
        """(N, in_channels, H, W), H and W multiples of max_stride -> [(N, len(mask)*(5+C), H/s, W/s) per head]."""
        _, c, h, w = x.shape
        if c != self.in_channels or h % self.max_stride or w % self.max_stride:
            raise ValueError(f"input {tuple(x.shape)}: expected {self.in_channels} channels and H, W multiples of "
                             f"{self.max_stride}")
        outputs: list[Tensor | None] = []  # per layer; only layers a route/shortcut reads are kept
        heads = []
        for i, module in enumerate(self.module_list):
            if isinstance(module, Route):
                x = module(outputs)
            elif isinstance(module, Shortcut):
                x = module(x, outputs)
            else:
                x = module(x)
            if i in self._head_layers:
                heads.append(x)
            outputs.append(x if i in self._saved else None)
        return heads

    def summary(self) -> str:
        """Layer table (index, type, output channels, stride, details), parameter count and upsample kind."""
        lines = [f"{'#':>4}  {'type':<14}{'out ch':>7}{'stride':>7}  details"]
        lines += [f"{i:>4}  {kind:<14}{ch:>7}{stride:>7}  {details}" for i, kind, ch, stride, details in self._rows]
        params = sum(p.numel() for p in self.parameters() if p.requires_grad)
        lines.append(f"input: {self.input_size[0]}x{self.input_size[1]} (W x H), {self.in_channels} channels")
        lines.append(f"trainable parameters: {params:,}")
        lines.append(f"upsample: {UPSAMPLE_KINDS[self.upsample]}")
        return "\n".join(lines)

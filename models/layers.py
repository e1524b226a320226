"""Building blocks of a darknet model: conv-bn-act, darknet max pooling, the deterministic nearest upsample, and
the two wiring layers (route, shortcut) that read earlier layer outputs.

All modules take and return ``(N, C, H, W)`` tensors; memory format (NCHW or channels_last) is preserved.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Darknet activation names -> module factories. Darknet's leaky slope is 0.1 (not PyTorch's 0.01).
ACTIVATIONS = {
    "leaky": lambda: nn.LeakyReLU(0.1),
    "linear": nn.Identity,
    "mish": nn.Mish,
    "relu": nn.ReLU,
    "logistic": nn.Sigmoid,
}


def make_activation(name: str) -> nn.Module:
    """Module for a darknet activation name; raises ValueError on an unknown name."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r} (expected one of {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


class ConvBNAct(nn.Sequential):
    """Darknet [convolutional]: conv, optional batch norm, activation.

    ``(N, in_channels, H, W) -> (N, out_channels, H', W')`` with ``H' = (H + 2*padding - size) // stride + 1``.
    The conv has a bias only without batch norm (BN's beta plays that role), exactly as darknet stores it.
    BatchNorm keeps PyTorch's defaults (momentum 0.1, eps 1e-5) rather than darknet's (0.01, 1e-6): they only shape
    running statistics during training, loaded darknet weights carry their own statistics, and the eps difference
    is far below fp32 resolution of typical variances.
    """

    def __init__(self, in_channels: int, out_channels: int, size: int, stride: int, padding: int,
                 batch_norm: bool, activation: str):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, size, stride, padding, bias=not batch_norm)
        if batch_norm:
            self.bn = nn.BatchNorm2d(out_channels)
        self.act = make_activation(activation)


class MaxPool(nn.Module):
    """Darknet [maxpool]: ``padding`` extra cells in total, ``padding // 2`` before and the rest after.

    Darknet's output is ``(H + padding - size) // stride + 1``; the default ``padding = size - 1`` makes
    ``size=2, stride=1`` (yolov3-tiny) keep the spatial size by padding one cell right and bottom. Padded cells are
    -inf, as darknet reads out-of-image cells as -FLT_MAX, so they never win the max.
    """

    def __init__(self, size: int, stride: int, padding: int):
        super().__init__()
        self.size, self.stride = size, stride
        before = padding // 2
        self.pad = (before, padding - before, before, padding - before)  # left, right, top, bottom

    def forward(self, x: Tensor) -> Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad, value=float("-inf"))
        return F.max_pool2d(x, self.size, self.stride)


class Upsample(nn.Module):
    """Nearest-neighbour upsampling by an integer ``scale``: ``(N, C, H, W) -> (N, C, H*s, W*s)``.

    ``deterministic=True`` repeats each pixel by ``expand`` + ``reshape``. Its backward is then a plain sum over the
    expanded dims, with no atomic scatter, so the gradient is bitwise reproducible on any backend and torch version
    (docs/determinism.md section 2). The forward values are bitwise those of ``F.interpolate(mode="nearest")``,
    the gradient equal up to summation order. ``deterministic=False`` calls ``F.interpolate`` itself.
    """

    def __init__(self, scale: int, deterministic: bool = True):
        super().__init__()
        if scale < 1:
            raise ValueError(f"upsample scale must be a positive integer, got {scale}")
        self.scale, self.deterministic = scale, deterministic

    def forward(self, x: Tensor) -> Tensor:
        if not self.deterministic:
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")
        n, c, h, w = x.shape
        s = self.scale
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Work on the (N, H, W, C) view so the single copy made by reshape is already channels_last.
            y = x.permute(0, 2, 3, 1)[:, :, None, :, None, :].expand(n, h, s, w, s, c)
            return y.reshape(n, h * s, w * s, c).permute(0, 3, 1, 2)
        return x[:, :, :, None, :, None].expand(n, c, h, s, w, s).reshape(n, c, h * s, w * s)

    def extra_repr(self) -> str:
        return f"scale={self.scale}, deterministic={self.deterministic}"


class Route(nn.Module):
    """Darknet [route]: the output of one earlier layer, or several concatenated along channels.

    ``sources`` are absolute layer indices; all sources share ``(N, ., H, W)``.
    """

    def __init__(self, sources: tuple[int, ...]):
        super().__init__()
        self.sources = sources

    def forward(self, outputs: list[Tensor | None]) -> Tensor:
        if len(self.sources) == 1:
            return outputs[self.sources[0]]
        return torch.cat([outputs[i] for i in self.sources], dim=1)

    def extra_repr(self) -> str:
        return f"sources={self.sources}"


class Shortcut(nn.Module):
    """Darknet [shortcut]: residual sum ``act(x + outputs[source])``, both ``(N, C, H, W)``."""

    def __init__(self, source: int, activation: str):
        super().__init__()
        self.source = source
        self.act = make_activation(activation)

    def forward(self, x: Tensor, outputs: list[Tensor | None]) -> Tensor:
        return self.act(x + outputs[self.source])

    def extra_repr(self) -> str:
        return f"source={self.source}"

"""The model as every entry point gets it: a darknet cfg built on a device, and its input convention.

Initialisation draws from the global torch RNG, which utils.seed seeds before anything else runs; building the
model is therefore the first consumer of that RNG in every process.
"""
from __future__ import annotations

import torch

from models.darknet import Darknet


def build_model(cfg_path: str, num_classes: int, upsample: str, device: torch.device,
                channels_last: bool = False) -> Darknet:
    """``Darknet(cfg_path)`` with ``num_classes`` outputs per anchor, on ``device``.

    Args:
        upsample: "deterministic" (expand-based) or "interpolate" (``utils.seed.upsample_kind`` of the mode).
        channels_last: convert parameters to the channels_last memory format (faster convolutions on GPUs).
    """
    model = Darknet(cfg_path, num_classes=num_classes, upsample=upsample).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> float32 in [0, 1] on the device (uint8 crosses the bus: 4x fewer bytes)."""
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x

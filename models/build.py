"""The model as every entry point gets it: a darknet cfg built on a device, initialised as darknet does, optionally
from earlier weights, and its input convention.

Initialisation draws from the global torch RNG, which utils.determinism seeds before anything else runs; building the
model is therefore the first consumer of that RNG in every process.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from models.darknet import Darknet
from utils.errors import UserError

INITS = ("darknet", "pytorch")


def build_model(cfg_path: str, num_classes: int, upsample: str, device: torch.device, channels_last: bool = False,
                input_size: tuple[int, int] | None = None, init: str = "darknet") -> Darknet:
    """``Darknet(cfg_path)`` with ``num_classes`` outputs per anchor, on ``device``.

    Args:
        upsample: "deterministic" (expand-based) or "interpolate" (``utils.determinism.upsample_kind`` of the mode).
        channels_last: convert parameters to the channels_last memory format (faster convolutions on GPUs).
        input_size: (W, H) the model is trained at; the cfg's anchors are scaled to it (models/darknet.py).
        init: "darknet" (``init_darknet_``) or "pytorch" (the layers' PyTorch defaults).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    model = Darknet(cfg_path, num_classes=num_classes, upsample=upsample, input_size=input_size)
    if init == "darknet":
        init_darknet_(model)
    model = model.to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def init_darknet_(model: nn.Module) -> None:
    """darknet's initialisation (``convolutional_layer.c``): conv weights ~ N(0, 2 / fan_in) (He-normal), conv
    biases 0; BatchNorm keeps gamma 1, beta 0. PyTorch's default (Kaiming-uniform with a = sqrt(5)) has a
    sqrt(6) = 2.45x smaller standard deviation. Draws from the global torch RNG, layer by layer."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Conv2d):
                fan_in = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
                module.weight.normal_(0.0, math.sqrt(2.0 / fan_in))
                if module.bias is not None:
                    module.bias.zero_()


def load_model_state(model: Darknet, state: dict, source: str, heads_left: str = "left at init") -> str:
    """Copy a state_dict of this repo into ``model``; the detection-head convolutions may differ in shape (another
    class count) and then stay as initialised. Any other mismatch is an error naming the keys.

    Returns a one-line description of what was loaded, for the log (``heads_left``: what becomes of such heads).
    """
    own = model.state_dict()
    heads = tuple(f"module_list.{i}." for i in model.head_conv_layers)
    reshaped = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    wrong = [k for k in reshaped if not k.startswith(heads)]
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if wrong or missing or unexpected:
        detail = "; ".join(f"{name} {keys[:4]}" for name, keys in (("shape differs", wrong), ("missing", missing),
                                                                   ("unexpected", unexpected)) if keys)
        raise UserError(f"{source}: weights do not fit {model.cfg_path} ({detail}); use weights of the same cfg")
    with torch.no_grad():
        for key, value in state.items():
            if key not in reshaped:
                own[key].copy_(value)
    kept = sorted({k.split(".")[1] for k in reshaped}, key=int)
    return (f"loaded {len(own) - len(reshaped)} of {len(own)} tensors from {source}"
            + (f"; head layers {', '.join(kept)} (another class count) {heads_left}" if kept else ""))


def copy_head_rows(model: Darknet, source: Darknet, class_sources: tuple[int | None, ...]) -> None:
    """Start ``model``'s detection heads from ``source``'s (the same cfg with another class count), in place.

    A head convolution's output rows are per anchor ``tx, ty, tw, th, objectness, C class logits``: the five box and
    objectness rows are copied as they are, class row c from ``source``'s row ``class_sources[c]``; a None keeps
    the row as initialised. Weights ``(A*(5+C), in, k, k)`` and biases ``(A*(5+C),)`` alike.
    """
    if len(class_sources) != model.num_classes:
        raise ValueError(f"{len(class_sources)} class sources for {model.num_classes} classes")
    with torch.no_grad():
        for index, head in zip(model.head_conv_layers, model.heads):
            own, src = model.module_list[index].conv, source.module_list[index].conv
            for anchor in range(len(head.anchors)):
                to, frm = anchor * (5 + model.num_classes), anchor * (5 + source.num_classes)
                rows = [(to + r, frm + r) for r in range(5)]
                rows += [(to + 5 + c, frm + 5 + s) for c, s in enumerate(class_sources) if s is not None]
                for param, from_param in ((own.weight, src.weight), (own.bias, src.bias)):
                    for t, f in rows:
                        param[t].copy_(from_param[f])


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """(B, 3, H, W) uint8 RGB -> float32 in [0, 1] on the device (uint8 crosses the bus: 4x fewer bytes); float32
    images (darknet's letterbox, already in [0, 1]) are moved as they are."""
    x = images.to(device, non_blocking=True)
    x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x

"""The optimizer and the learning-rate schedule.

SGD with momentum, weight decay on convolution weights only. Schedule of optimizer step s (0-based) of T:
1) darknet burn-in over the first B steps: ``lr * ((s + 1) / B) ** 4``; 2) then cosine decay to ``lr_final * lr``,
or x0.1 at each fraction ``lr_steps`` of training (step schedule).

Burn-in is configured in training images (``burn_in_images``) and converted with the images of one optimizer step
(batch x accumulate x world size), so a preset means the same at any of them, as darknet counts burn-in in batches
of 64 images. The peak lr applies to the gradient of the loss averaged over images (darknet's convention), so it is
not scaled with the batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from utils.errors import UserError


def make_optimizer(model: nn.Module, cfg) -> torch.optim.SGD:
    """SGD with momentum; weight decay on convolution weights only (BN parameters and biases are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg.lr, momentum=cfg.momentum)


@dataclass(frozen=True)
class Schedule:
    """The learning rate of every optimizer step of one run (steps counted from 0)."""

    lr: float  # peak
    burn_in_steps: int
    total_steps: int
    kind: str = "cosine"  # or "step"
    lr_steps: tuple = (0.8, 0.9)  # step schedule: fractions of training where lr is multiplied by 0.1
    lr_final: float = 0.05  # cosine schedule: final lr as a fraction of the peak

    def lr_at(self, step: int) -> float:
        if step < self.burn_in_steps:
            return self.lr * ((step + 1) / self.burn_in_steps) ** 4
        if self.kind == "step":
            return self.lr * 0.1 ** sum(step >= f * self.total_steps for f in self.lr_steps)
        progress = (step - self.burn_in_steps) / max(1, self.total_steps - self.burn_in_steps)
        return self.lr * (self.lr_final + (1 - self.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_schedule(cfg, images_per_step: int, total_steps: int) -> Schedule:
    """The run's schedule; refuses one that would never reach its peak lr, naming both numbers."""
    burn_in = math.ceil(cfg.burn_in_images / images_per_step)
    where = (f"burn-in of {cfg.burn_in_images} images = {burn_in} optimizer steps of {images_per_step} images "
             f"(batch x accumulate x world size)")
    if burn_in >= total_steps:
        raise UserError(f"{where}, but training has only {total_steps} steps: the lr would never reach its peak "
                        f"{cfg.lr}; lower --burn-in-images or train longer")
    if cfg.schedule == "step" and min(cfg.lr_steps) * total_steps < burn_in:
        raise UserError(f"{where}, but the step schedule decays at step {min(cfg.lr_steps) * total_steps:g} of "
                        f"{total_steps}, before the peak lr {cfg.lr}; lower --burn-in-images or move --lr-steps")
    return Schedule(cfg.lr, burn_in, total_steps, cfg.schedule, tuple(cfg.lr_steps), cfg.lr_final)


def set_lr(optimizer: torch.optim.Optimizer, step: int, schedule: Schedule) -> float:
    """Give every parameter group the scheduled lr of optimizer step ``step``; returns it."""
    lr = schedule.lr_at(step)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr

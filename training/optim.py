"""The optimizer and the learning-rate schedule.

SGD with momentum, weight decay on convolution weights only. Schedule of optimizer step s (0-based):
1) darknet burn-in: ``lr * ((s + 1) / burn_in) ** 4``; 2) then cosine decay to ``lr_final * lr``, or x0.1 at each
fraction ``lr_steps`` of training (step schedule).
"""
from __future__ import annotations

import math

import torch
from torch import nn


def make_optimizer(model: nn.Module, cfg) -> torch.optim.SGD:
    """SGD with momentum; weight decay on convolution weights only (BN parameters and biases are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg.lr, momentum=cfg.momentum)


def lr_at(step: int, cfg, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) of ``total_steps``."""
    if step < cfg.burn_in:
        return cfg.lr * ((step + 1) / cfg.burn_in) ** 4
    if cfg.schedule == "step":
        return cfg.lr * 0.1 ** sum(step >= f * total_steps for f in cfg.lr_steps)
    progress = (step - cfg.burn_in) / max(1, total_steps - cfg.burn_in)
    return cfg.lr * (cfg.lr_final + (1 - cfg.lr_final) * 0.5 * (1 + math.cos(math.pi * progress)))


def set_lr(optimizer: torch.optim.Optimizer, step: int, cfg, total_steps: int) -> float:
    """Give every parameter group the scheduled lr of optimizer step ``step``; returns it."""
    lr = lr_at(step, cfg, total_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr

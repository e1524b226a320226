"""The training step loop and evaluation pass: short and linear, no file handling (see utils/trainer.py)."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from utils.loss import yolo_loss
from utils.runs import f32_hex, weights_sha256


@dataclass
class Position:
    """Where training stands: ``step`` optimizer steps done; the next batch is ``batch`` of ``epoch``."""

    epoch: int = 0
    step: int = 0
    batch: int = 0


class NonFiniteLoss(RuntimeError):
    """Training stopped on a NaN or infinite loss."""


def make_optimizer(model: nn.Module, cfg) -> torch.optim.SGD:
    """SGD with momentum; weight decay on convolution weights only (BN parameters and biases are not decayed)."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                            {"params": no_decay, "weight_decay": 0.0}],
                           lr=cfg.lr, momentum=cfg.momentum)


def lr_at(step: int, cfg, total_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based): 1) darknet burn-in, (step/burn_in)^4 of the peak;
    2) then cosine decay to ``lr_final`` x peak, or x0.1 at each fraction in ``lr_steps`` of training."""
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


def to_input(images: torch.Tensor, device: torch.device, channels_last: bool) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> float32 in [0, 1] on the device (uint8 crosses the bus: 4x fewer bytes)."""
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def forward_loss(model, heads, batch, device, cfg) -> dict[str, torch.Tensor]:
    """One batch through the model and the loss, under bf16 autocast when asked."""
    x = to_input(batch.images, device, cfg.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        outputs = model(x)
    return yolo_loss([o.float() for o in outputs], heads, batch.targets.to(device), batch.ignore.to(device),
                     tuple(batch.size))


def train_one_epoch(model, heads, optimizer, loader, pos: Position, cfg, total_steps: int, device,
                    on_step, reduce_loss=lambda t: t) -> None:
    """Run the batches ``loader`` yields (the rest of epoch ``pos.epoch``), stepping every ``accumulate`` batches.

    ``on_step(record)`` receives one dict per optimizer step (its metrics line) and may checkpoint or stop.
    ``reduce_loss`` averages a loss tensor over DDP ranks (identity in a single process).
    """
    model.train()
    sums, seen, tic = None, 0, time.perf_counter()
    for batch in loader:
        losses = forward_loss(model, heads, batch, device, cfg)
        (losses["total"] / cfg.accumulate).backward()
        detached = {k: v.detach() for k, v in losses.items()}
        sums = detached if sums is None else {k: sums[k] + detached[k] for k in sums}
        seen += len(batch.images)
        pos.batch += 1
        if pos.batch % cfg.accumulate:
            continue
        lr = set_lr(optimizer, pos.step, cfg, total_steps)
        step_losses = {k: reduce_loss(v / cfg.accumulate) for k, v in sums.items()}
        _check_finite(step_losses, pos)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        pos.step += 1
        now = time.perf_counter()
        on_step(_record(model, pos, cfg, lr, batch, step_losses, seen / (now - tic)))
        sums, seen, tic = None, 0, now


def _check_finite(losses: dict, pos: Position) -> None:
    if not all(torch.isfinite(v).item() for v in losses.values()):
        values = {k: v.item() for k, v in losses.items()}
        raise NonFiniteLoss(f"non-finite loss at optimizer step {pos.step + 1} (epoch {pos.epoch}, "
                            f"batch {pos.batch}): {values}")


def _record(model, pos: Position, cfg, lr: float, batch, losses: dict, images_per_s: float) -> dict:
    """The metrics.jsonl line of one optimizer step."""
    total = losses["total"].float().item()
    record = {"type": "train", "step": pos.step, "epoch": pos.epoch, "batch": pos.batch, "lr": lr,
              "size": list(batch.size), **{k: v.item() for k, v in losses.items()},
              "loss_f32": f32_hex(total), "images_per_s": round(images_per_s, 2)}
    if pos.step % cfg.fingerprint_every == 0:
        record["params"] = weights_sha256(unwrap(model).state_dict())[:16]
    return record


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model

"""The training step loop: batches -> forward, loss, backward -> optimizer steps. Short and linear, no files.

``train_steps`` is the one implementation of a training step: the trainer and the throughput benchmark both run
it. It yields the metrics record of every optimizer step; the caller logs, checkpoints or stops between steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from models.build import to_input
from models.loss import yolo_loss
from training.optim import set_lr
from utils.distributed import unwrap
from utils.errors import UserError
from utils.fingerprint import f32_hex, weights_sha256


@dataclass
class Position:
    """Where training stands: ``step`` optimizer steps done; the next batch is ``batch`` of ``epoch``."""

    epoch: int = 0
    step: int = 0
    batch: int = 0


class NonFiniteLoss(UserError):
    """Training stopped on a NaN or infinite loss (usually a learning rate too high for the input size)."""


def forward_loss(model, heads, batch, device, cfg) -> dict[str, torch.Tensor]:
    """One batch through the model and the loss, under bf16 autocast when asked."""
    x = to_input(batch.images, device, cfg.channels_last)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp):
        outputs = model(x)
    return yolo_loss([o.float() for o in outputs], heads, batch.targets.to(device), batch.ignore.to(device),
                     tuple(batch.size))


def train_steps(model, heads, optimizer, batches, pos: Position, cfg, total_steps: int, device,
                reduce_loss=lambda t: t):
    """Run ``batches`` (the rest of epoch ``pos.epoch``), stepping every ``cfg.accumulate`` batches.

    Yields the metrics.jsonl record (a dict) of each optimizer step, after the step; ``pos`` is advanced in place.
    ``reduce_loss`` averages a loss tensor over DDP ranks (identity in a single process).
    Raises NonFiniteLoss before stepping on a NaN or infinite loss.
    """
    model.train()
    sums, seen, tic = None, 0, time.perf_counter()
    for batch in batches:
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
        yield _record(model, pos, cfg, lr, batch, step_losses, seen / (now - tic))
        sums, seen, tic = None, 0, time.perf_counter()


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

"""The training step loop: batches -> forward, loss, backward -> optimizer steps. Short and linear, no files.

``train_steps`` is the one implementation of a training step: the trainer and the throughput benchmark both run
it. It yields the metrics record of every optimizer step; the caller logs, checkpoints or stops between steps.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from models.build import to_input
from models.loss import yolo_loss
from training.optim import Schedule, set_lr
from utils.distributed import unwrap
from utils.errors import UserError
from utils.fingerprint import f32_hex, fingerprint_parts, finish_fingerprint, weights_sha256
from utils.timing import NO_TIMER, SectionTimer


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
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.amp == "on"):
        outputs = model(x)
    return yolo_loss([o.float() for o in outputs], heads, batch.targets.to(device), batch.ignore.to(device),
                     tuple(batch.size), cfg.box_loss, cfg.obj_norm)


LOSS_KEYS = ("box", "obj", "cls", "total")


def train_steps(model, heads, optimizer, batches, pos: Position, cfg, schedule: Schedule, device,
                reduce_loss=lambda t: t, timer: SectionTimer = NO_TIMER):
    """Run ``batches`` (the rest of epoch ``pos.epoch``), stepping every ``cfg.accumulate`` batches.

    Yields the metrics.jsonl record (a dict) of each optimizer step, after the step; ``pos`` is advanced in place.
    ``reduce_loss`` averages a tensor over DDP ranks (identity in a single process). Each step transfers one small
    tensor to the host (its losses, and every ``cfg.fingerprint_every`` steps the parameter fingerprint): the only
    synchronisation with the device. The finite check reads that transfer, so it follows the optimizer step; a
    non-finite loss raises NonFiniteLoss before the step's record exists, so nothing after it is ever saved.
    """
    model.train()
    batches = iter(batches)
    sums, seen, tic = None, 0, time.perf_counter()
    while True:
        with timer.section("loader"):
            batch = next(batches, None)
        if batch is None:
            return
        with timer.section("forward_backward"):
            terms = forward_loss(model, heads, batch, device, cfg)
            (terms["total"] / cfg.accumulate).backward()
        losses = torch.stack([terms[k].detach() for k in LOSS_KEYS])  # (4,): one reduction, one transfer
        sums = losses if sums is None else sums + losses
        seen += len(batch.images)
        pos.batch += 1
        if pos.batch % cfg.accumulate:
            continue
        with timer.section("optimizer"):
            lr = set_lr(optimizer, pos.step, schedule)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        with timer.section("bookkeeping"):
            pos.step += 1
            record = _record(model, pos, cfg, lr, batch, reduce_loss(sums / cfg.accumulate),
                             host_fingerprint=device.type == "cpu")
        record["images_per_s"] = round(seen / (time.perf_counter() - tic), 2)
        yield record
        sums, seen, tic = None, 0, time.perf_counter()


def _record(model, pos: Position, cfg, lr: float, batch, losses: torch.Tensor, host_fingerprint: bool) -> dict:
    """The metrics.jsonl line of one optimizer step, from one transfer: the (4,) float32 losses, and on
    fingerprint steps on an accelerator the parameters' on-device fingerprint, both viewed as int32 so the copy
    moves raw bits. On a CPU the parameters are host memory already and sha256 (hardware-accelerated) is about
    twice as fast as the on-device fingerprint's integer mixing, so it fingerprints them there."""
    parts = [losses.float().view(torch.int32)]
    header, fingerprint = None, None
    if pos.step % cfg.fingerprint_every == 0:
        state = unwrap(model).state_dict()
        if host_fingerprint:
            fingerprint = weights_sha256(state)[:16]
        else:
            header, sums = fingerprint_parts(state.values())
            parts.append(torch.stack(sums).view(torch.int32))
    host = torch.cat(parts).cpu().numpy()
    values = host[:4].view(np.float32)
    if not np.isfinite(values).all():
        raise NonFiniteLoss(f"non-finite loss at optimizer step {pos.step} (epoch {pos.epoch}, batch {pos.batch}): "
                            f"{dict(zip(LOSS_KEYS, values.tolist()))}")
    record = {"type": "train", "step": pos.step, "epoch": pos.epoch, "batch": pos.batch, "lr": lr,
              "size": list(batch.size), **dict(zip(LOSS_KEYS, values.tolist())),
              "loss_f32": f32_hex(float(values[3]))}
    if header is not None:
        fingerprint = finish_fingerprint(header, host[4:].view(np.int64).tolist())
    if fingerprint is not None:
        record["fingerprint"] = fingerprint
    return record

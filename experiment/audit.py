"""Determinism audit: run the same training step twice from the same state and compare every gradient bitwise.

A parameter whose gradient differs between the two passes sits at or before an op that is nondeterministic in
this mode on this machine: the audit names it, which is what a user adding a layer needs to know.
Within one process the audit cannot see cross-process effects (cuDNN autotuning picks per process): compare two
full runs for those.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from training import build
from training.step import forward_loss


def audit_gradients(model: nn.Module, compute_loss, repeats: int = 2) -> list[dict]:
    """Gradients of ``compute_loss(model)`` over ``repeats`` passes from one saved state.

    Returns one dict per parameter, in ``named_parameters`` order: name, shape, identical (all passes bitwise
    equal to the first), max_abs_diff (largest deviation from the first pass).
    """
    if repeats < 2:
        raise ValueError(f"an audit needs at least 2 passes, got {repeats}")
    state = copy.deepcopy(model.state_dict())  # BN running statistics change during a training forward
    passes = []
    for _ in range(repeats):
        model.load_state_dict(state)
        model.zero_grad(set_to_none=True)
        compute_loss(model).backward()
        passes.append({n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()})
    model.load_state_dict(state)
    return [_compare(name, [p[name] for p in passes]) for name in passes[0]]


def _compare(name: str, grads: list) -> dict:
    first = grads[0]
    if first is None:
        return {"name": name, "shape": None, "identical": all(g is None for g in grads), "max_abs_diff": 0.0}
    same = all(g is not None and torch.equal(first, g) for g in grads[1:])
    diff = max((float((g.float() - first.float()).abs().max()) for g in grads[1:] if g is not None), default=0.0)
    return {"name": name, "shape": list(first.shape), "identical": same, "max_abs_diff": diff}


def format_audit(rows: list[dict]) -> str:
    differing = [r for r in rows if not r["identical"]]
    lines = [f"{len(rows) - len(differing)} of {len(rows)} parameter gradients bitwise identical"]
    lines += [f"  DIFFERS: {r['name']} {tuple(r['shape'] or ())} max |diff| {r['max_abs_diff']:.3g}" for r in differing]
    return "\n".join(lines)


def audit_checkpoint(path: str, repeats: int = 2, device: str | None = None) -> list[dict]:
    """Audit one training step of a run's checkpoint, in the checkpoint's determinism mode, on its next batch."""
    model, cfg, dev, ckpt = build.from_checkpoint(path, device=device)
    model.train()
    data = build.dataset(cfg, cfg.train_split, cache="none")
    epoch = min(ckpt["epoch"], cfg.epochs - 1)
    batch = next(iter(build.train_loader(cfg, data, epoch, ckpt["batch"] if epoch == ckpt["epoch"] else 0)))
    return audit_gradients(model, lambda m: forward_loss(m, m.heads, batch, dev, cfg)["total"], repeats)

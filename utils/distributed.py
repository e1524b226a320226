"""torchrun / DistributedDataParallel set-up and rank helpers. A single process is a world of size 1.

Reproducibility key under DDP: the same world size, the same per-rank batch, the same GPU model and software.
The determinism switches (utils.determinism.configure) must be applied before ``init_process_group`` so that, on CUDA,
PyTorch creates the NCCL communicator with its nondeterministic NVLS algorithms disabled.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as td
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def wrap(self, model: nn.Module) -> nn.Module:
        """DDP with fixed bucketing (the bucket layout is part of the gradient's summation order)."""
        if not self.enabled:
            return model
        ids = [self.local_rank] if self.backend == "nccl" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids, bucket_cap_mb=25,
                                                   broadcast_buffers=True)

    def mean(self, t: torch.Tensor) -> torch.Tensor:
        """Average a tensor over ranks (fixed-order all-reduce); the identity in a single process."""
        if not self.enabled:
            return t
        t = t.clone()
        td.all_reduce(t)
        return t / self.world_size

    def broadcast(self, obj):
        """Rank 0's Python object on every rank."""
        if not self.enabled:
            return obj
        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj) -> list:
        """Every rank's object, in rank order, on every rank."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        td.all_gather_object(out, obj)
        return out


def from_env(device_type: str) -> Dist:
    """Join the process group torchrun describes in the environment (RANK, WORLD_SIZE, LOCAL_RANK), if any."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return Dist()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local)
    td.init_process_group(backend=backend)
    return Dist(rank=rank, world_size=world, local_rank=local, backend=backend)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shutdown(dist: Dist) -> None:
    if dist.enabled and td.is_initialized():
        td.destroy_process_group()

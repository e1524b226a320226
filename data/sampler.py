"""Which samples form each training batch, and at what input size: a pure function of (run seed, position).

Three random streams, each a fresh NumPy Generator keyed by ``[seed % 2**32, seed // 2**32, stream, a, b]``
(fixed width, so no two positions share a key; NumPy's SeedSequence zero-pads short keys, which would otherwise
make ``[seed, epoch]`` and ``[seed, epoch, 0]`` the same stream):

- ``SAMPLE`` (epoch, sample index): that sample's augmentation, drawn inside the worker that builds it
  (data/loader.py).
- ``SHUFFLE`` (epoch, 0): the epoch's permutation, the same on every rank.
- ``SCALE`` (epoch, b // scale_every): the input size of global batch b.

The batch sampler runs in the main process and hands each sample its ``SampleKey`` (index, epoch, size, batch), so
workers hold no state: num_workers, persistent workers, prefetching and resuming mid-epoch cannot change a batch.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from torch.utils.data import Sampler

from data.transforms import check_input_size
from utils.errors import UserError

SAMPLE, SHUFFLE, SCALE = 0, 1, 2  # stream tags of the random keys above
SCALE_RANGE = (0.75, 1.25)  # multi-scale widths span this fraction of the base width


def stream_rng(seed: int, stream: int, a: int, b: int) -> np.random.Generator:
    """The Generator of one random decision: run seed (0 <= seed < 2**64), stream tag and two position words."""
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return np.random.default_rng([seed % 2**32, seed // 2**32, stream, a, b])


def multiscale_sizes(base_size, scale_range=SCALE_RANGE) -> list[tuple[int, int]]:
    """Candidate input sizes (W, H) at the base size's aspect ratio, in increasing width.

    Widths are the multiples of 32 in [lo * W0, hi * W0]; height = round(width * H0 / W0 / 32) * 32 (halves up),
    at least 32. Example: base 416x128 -> 320x96, 352x96, 384x128, 416x128, 448x128, 480x160, 512x160.
    """
    width0, height0 = check_input_size(base_size)
    lo, hi = scale_range
    first, last = math.ceil(lo * width0 / 32), math.floor(hi * width0 / 32)
    return [(32 * k, 32 * max(1, math.floor(32 * k * height0 / width0 / 32 + 0.5))) for k in range(first, last + 1)]


class SampleKey(NamedTuple):
    """Everything that decides one training sample; made in the main process, sent to a worker."""

    index: int  # position in the dataset (KittiDataset.ids)
    epoch: int
    size: tuple[int, int]  # network input (W, H)
    batch: int  # global batch index within the epoch (the same on every rank)


class ShardedBatchSampler(Sampler):
    """Yields ``list[SampleKey]`` batches: seeded shuffle, multi-scale sizes, DDP sharding, mid-epoch resume.

    Global batch g of an epoch is ``permutation[g*B*world : (g+1)*B*world]``; rank r takes its slice
    ``[r*B : (r+1)*B]``. The permutation and the size of each global batch depend on (seed, epoch, g) only, so all
    ranks agree. Training drops the last incomplete global batch (every rank steps the same number of times and
    every batch has B samples, a fixed part of the reproducibility key), and with ``group`` > 1 (gradient
    accumulation) also the batches after the last complete group, so no gradient crosses an epoch boundary and
    every optimizer step sees ``group`` batches. Call ``set_epoch`` before each epoch. ``indices`` restricts the
    draw to those dataset positions (default: all ``num_samples``).
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int, base_size, *, shuffle: bool = True,
                 multiscale: bool = True, scale_every: int = 10, rank: int = 0, world_size: int = 1,
                 epoch: int = 0, start_batch: int = 0, drop_last: bool = True, indices=None, group: int = 1,
                 scale_seed: int | None = None):
        if batch_size < 1 or scale_every < 1 or world_size < 1 or group < 1 or not 0 <= rank < world_size:
            raise ValueError(f"need batch_size >= 1, scale_every >= 1, 0 <= rank < world_size; got {batch_size}, "
                             f"{scale_every}, rank {rank} of {world_size}")
        if not drop_last and (world_size > 1 or group > 1):
            raise ValueError("drop_last=False would give ranks or accumulation groups different batch counts")
        self.indices = _check_indices(indices, num_samples)
        self.num_samples, self.batch_size, self.seed = len(self.indices), batch_size, seed
        self.scale_seed = seed if scale_seed is None else scale_seed  # multi-scale is augmentation, not order
        self.rank, self.world_size, self.shuffle, self.scale_every = rank, world_size, shuffle, scale_every
        self.sizes = multiscale_sizes(base_size) if multiscale else [check_input_size(base_size)]
        per_global = batch_size * world_size
        n = self.num_samples
        self.batches_per_epoch = n // per_global // group * group if drop_last else math.ceil(n / per_global)
        if self.batches_per_epoch == 0:
            raise UserError(f"{n} samples do not fill one optimizer step of {batch_size} images x {world_size} "
                            f"process(es) x {group} accumulated batches (use a smaller --batch-size or "
                            "--accumulate, or more frames)")
        stream_rng(seed, SHUFFLE, 0, 0), stream_rng(self.scale_seed, SCALE, 0, 0)  # validate the seeds now
        self.set_epoch(epoch, start_batch)

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Select the epoch to yield; ``start_batch`` skips its first batches (resume) without drawing anything."""
        if epoch < 0 or not 0 <= start_batch <= self.batches_per_epoch:
            raise ValueError(f"need epoch >= 0 and 0 <= start_batch <= {self.batches_per_epoch}, "
                             f"got epoch {epoch}, start_batch {start_batch}")
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        """Batches this rank yields for the current epoch from ``start_batch`` on."""
        return self.batches_per_epoch - self.start_batch

    def input_size(self, epoch: int, batch: int) -> tuple[int, int]:
        """(W, H) of global batch ``batch``; constant over blocks of ``scale_every`` batches."""
        if len(self.sizes) == 1:
            return self.sizes[0]
        block = batch // self.scale_every
        return self.sizes[int(stream_rng(self.scale_seed, SCALE, epoch, block).integers(len(self.sizes)))]

    def order(self, epoch: int) -> np.ndarray:
        """``int64[num_samples]``: the epoch's dataset positions in order, identical on every rank."""
        if not self.shuffle:
            return self.indices.copy()
        return self.indices[stream_rng(self.seed, SHUFFLE, epoch, 0).permutation(self.num_samples)]

    def __iter__(self):
        epoch, per_global = self.epoch, self.batch_size * self.world_size
        order = self.order(epoch)
        for g in range(self.start_batch, self.batches_per_epoch):
            start = g * per_global + self.rank * self.batch_size
            size = self.input_size(epoch, g)
            yield [SampleKey(int(i), epoch, size, g) for i in order[start:start + self.batch_size]]


def _check_indices(indices, num_samples: int) -> np.ndarray:
    """``int64[n]`` dataset positions to draw from: all ``num_samples`` by default, else distinct ones in range."""
    if indices is None:
        return np.arange(num_samples)
    out = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(np.unique(out)) != len(out) or (out < 0).any() or (out >= num_samples).any():
        raise ValueError(f"indices must be distinct positions in [0, {num_samples}), got {indices!r}")
    return out

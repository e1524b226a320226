"""Batches for training and evaluation, with every random decision a pure function of (run seed, position).

Three random streams, each a fresh NumPy Generator keyed by ``[seed % 2**32, seed // 2**32, stream, a, b]``
(fixed width, so no two positions share a key; NumPy's SeedSequence zero-pads short keys, which would otherwise
make ``[seed, epoch]`` and ``[seed, epoch, 0]`` the same stream):

- ``SAMPLE`` (epoch, sample index): that sample's augmentation, drawn inside the worker that builds it.
- ``SHUFFLE`` (epoch, 0): the epoch's permutation, the same on every rank.
- ``SCALE`` (epoch, b // scale_every): the input size of global batch b.

The batch sampler runs in the main process and hands each sample its ``SampleKey`` (index, epoch, size, batch), so
workers hold no state: num_workers, persistent workers, prefetching and resuming mid-epoch cannot change a batch.
Nothing here reads or seeds the global ``random``, ``np.random`` or torch RNG (the reference recipe's constant
``np.random.seed(0)`` in workers is applied by utils.determinism, the owner of global switches).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from data.transforms import (
    NO_AUGMENT,
    AugmentConfig,
    Letterbox,
    augment,
    check_input_size,
)
from utils.errors import UserError
from utils.determinism import reference_worker_init

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


@dataclass(frozen=True)
class Sample:
    """One augmented frame in input pixels (N trained objects, D ignore regions)."""

    image: np.ndarray  # uint8[3, H, W] RGB; float32 in [0, 1] with darknet's letterbox
    boxes: np.ndarray  # float64[N, 4] xyxy
    cls: np.ndarray  # int64[N] class index, all >= 0
    ignore: np.ndarray  # float64[D, 4] xyxy: DontCare regions, then objects of untrained classes
    id: str
    letterbox: Letterbox
    key: SampleKey


class AugmentedKitti(Dataset):
    """Map-style view of a KittiDataset indexed by SampleKey.

    ``aug_rng="per_sample"``: each sample's augmentation generator is keyed by (seed, epoch, index).
    ``aug_rng="worker_stream"``: the reference post's scheme, reproduced for its experiment: one stream per process,
    restarted from the constant 0 in every worker (``worker_stream_init``), from which each sample draws in turn, so
    augmentation depends on which worker loads a sample and repeats across workers and epochs.
    """

    def __init__(self, dataset, seed: int, aug: AugmentConfig = AugmentConfig(), aug_rng: str = "per_sample"):
        if aug_rng not in ("per_sample", "worker_stream"):
            raise ValueError(f"aug_rng must be 'per_sample' or 'worker_stream', got {aug_rng!r}")
        self.dataset, self.seed, self.aug, self.aug_rng = dataset, seed, aug, aug_rng
        self.stream = np.random.default_rng(0)

    def sample_rng(self, key: SampleKey) -> np.random.Generator:
        if self.aug_rng == "worker_stream":
            return np.random.default_rng(self.stream.integers(2**63))
        return stream_rng(self.seed, SAMPLE, key.epoch, key.index)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: SampleKey) -> Sample:
        labels = self.dataset.labels[key.index]
        cls = self.dataset.class_index(labels.names)
        trained = cls >= 0
        # Untrained classes (e.g. Van when training Car) must not be taught as background: ignore them.
        ignore = np.concatenate([labels.dontcare, labels.boxes[~trained]])
        rng = self.sample_rng(key)
        image, boxes, cls, ignore, lb = augment(rng, self.dataset.load_image(key.index), labels.boxes[trained],
                                                cls[trained], ignore, key.size, self.aug)
        return Sample(image, boxes, cls, ignore, self.dataset.ids[key.index], lb, key)


@dataclass(frozen=True)
class Batch:
    """A collated batch: B images of one input size (W, H); M trained objects and D ignore regions in total."""

    images: torch.Tensor  # uint8[B, 3, H, W] RGB, float32 in [0, 1] with darknet's letterbox (models.build.to_input)
    targets: torch.Tensor  # float32[M, 6] [batch row, class index, x1, y1, x2, y2] input pixels, batch then file order
    ignore: torch.Tensor  # float32[D, 5] [batch row, x1, y1, x2, y2]: no objectness loss inside these
    ids: list[str]  # frame ids, one per image
    letterbox: list[Letterbox]  # per image: input pixels -> frame pixels
    epoch: int
    batch_index: int  # global batch index within the epoch
    size: tuple[int, int]  # input (W, H)

    def pin_memory(self) -> Batch:
        """Called by DataLoader(pin_memory=True): page-locked tensors copy to the GPU asynchronously."""
        return dataclasses.replace(self, images=self.images.pin_memory(), targets=self.targets.pin_memory(),
                                   ignore=self.ignore.pin_memory())


def collate(samples: list[Sample]) -> Batch:
    """Stack samples in the order given (the batch sampler's), rows of targets/ignore in batch then file order."""
    keys = {(s.key.epoch, s.key.batch, s.key.size) for s in samples}
    if len(keys) != 1:
        raise ValueError(f"a batch mixes epochs, batch indices or input sizes: {sorted(keys)}")
    targets = [np.column_stack([np.full(len(s.cls), b), s.cls, s.boxes]) for b, s in enumerate(samples)]
    ignore = [np.column_stack([np.full(len(s.ignore), b), s.ignore]) for b, s in enumerate(samples)]
    return Batch(images=torch.from_numpy(np.stack([s.image for s in samples])),
                 targets=torch.from_numpy(np.concatenate(targets).astype(np.float32).reshape(-1, 6)),
                 ignore=torch.from_numpy(np.concatenate(ignore).astype(np.float32).reshape(-1, 5)),
                 ids=[s.id for s in samples], letterbox=[s.letterbox for s in samples],
                 epoch=samples[0].key.epoch, batch_index=samples[0].key.batch, size=samples[0].key.size)


def _init_worker(worker_id: int) -> None:
    """OpenCV's own thread pool inside each worker would oversubscribe the cores; results do not depend on it."""
    cv2.setNumThreads(0)


def worker_stream_init(worker_id: int) -> None:
    """The reference post's worker_init_fn (np.random.seed(0), via utils.determinism), plus this worker's own copy
    of the augmentation stream restarted from the same constant: every worker replays one sequence."""
    _init_worker(worker_id)
    reference_worker_init(worker_id)
    get_worker_info().dataset.stream = np.random.default_rng(0)


def _loader(samples: AugmentedKitti, sampler: ShardedBatchSampler, workers: int, persistent_workers: bool,
            seed: int) -> DataLoader:
    init = worker_stream_init if samples.aug_rng == "worker_stream" else _init_worker
    return DataLoader(samples, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                      pin_memory=torch.cuda.is_available(), worker_init_fn=init if workers else None,
                      # Seeded so that the worker base_seed draw never touches the global torch RNG.
                      generator=torch.Generator().manual_seed(seed % 2**63),
                      persistent_workers=persistent_workers and workers > 0, in_order=True)


def build_train_loader(dataset, seed: int, batch_size: int, base_size, workers: int, epoch: int = 0,
                       start_batch: int = 0, rank: int = 0, world_size: int = 1, persistent_workers: bool = False,
                       multiscale: bool = True, scale_every: int = 10, aug: AugmentConfig = AugmentConfig(),
                       aug_rng: str = "per_sample", accumulate: int = 1, aug_seed: int | None = None) -> DataLoader:
    """Training batches of a KittiDataset for one rank. Yields ``Batch``.

    Args:
        base_size: (W, H) network input, multiples of 32; with ``multiscale`` the size of each block of
            ``scale_every`` batches is drawn from ``multiscale_sizes(base_size)``.
        epoch, start_batch: where iteration starts (resume); afterwards call
            ``loader.batch_sampler.set_epoch(e)`` before each epoch e.
        persistent_workers: keep workers between epochs (ignored with workers=0); batches are identical either way.
        aug_rng: "per_sample" (default) or "worker_stream" (the reference recipe; see AugmentedKitti).
        accumulate: batches per optimizer step: an epoch yields a multiple of it.
        seed, aug_seed: ``seed`` keys the batch order; ``aug_seed`` (default: ``seed``) keys the augmentation
            draws and the multi-scale sizes, so either source of randomness can be varied alone.
    """
    aug_seed = seed if aug_seed is None else aug_seed
    sampler = ShardedBatchSampler(len(dataset), batch_size, seed, base_size, multiscale=multiscale,
                                  scale_every=scale_every, rank=rank, world_size=world_size, epoch=epoch,
                                  start_batch=start_batch, group=accumulate, scale_seed=aug_seed)
    return _loader(AugmentedKitti(dataset, aug_seed, aug, aug_rng), sampler, workers, persistent_workers, seed)


def build_eval_loader(dataset, batch_size: int, size, workers: int, indices=None,
                      letterbox: str = "repo") -> DataLoader:
    """Evaluation batches: each frame once, in id order (or the order of ``indices``, a subset of dataset
    positions), letterboxed to the fixed ``size`` (W, H), no augmentation. Yields ``Batch``.

    letterbox: "repo" (uint8 images) or "darknet" (float32 images, data.transforms.letterbox_darknet: how darknet
    feeds a network, for models trained by darknet)."""
    sampler = ShardedBatchSampler(len(dataset), batch_size, 0, size, shuffle=False, multiscale=False,
                                  drop_last=False, indices=indices)
    aug = dataclasses.replace(NO_AUGMENT, letterbox=letterbox)
    return _loader(AugmentedKitti(dataset, 0, aug), sampler, workers, False, 0)


def endless(loader: DataLoader):
    """Training batches without end, epoch after epoch (for benchmarks; with persistent workers there is no
    restart cost at epoch boundaries)."""
    epoch = loader.batch_sampler.epoch
    while True:
        loader.batch_sampler.set_epoch(epoch)
        yield from loader
        epoch += 1

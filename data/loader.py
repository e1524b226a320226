"""Batches for training and evaluation, built from the batch sampler's keys (data/sampler.py): every random
decision is a pure function of (run seed, position), so workers hold no state.

Nothing here reads or seeds the global ``random``, ``np.random`` or torch RNG (the reference recipe's constant
``np.random.seed(0)`` in workers is applied by utils.determinism, the owner of global switches).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from data.sampler import SAMPLE, SampleKey, ShardedBatchSampler, stream_rng
from data.transforms import NO_AUGMENT, AugmentConfig, Letterbox, augment
from utils.determinism import reference_worker_init


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
        self.restart_stream()

    def restart_stream(self) -> None:
        """``worker_stream``: this process's stream starts again from the constant 0 (every epoch, as the reference
        recipe's freshly started workers do)."""
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
    get_worker_info().dataset.restart_stream()


def _loader(samples: AugmentedKitti, sampler: ShardedBatchSampler, workers: int, persistent_workers: bool,
            seed: int) -> DataLoader:
    init = worker_stream_init if samples.aug_rng == "worker_stream" else _init_worker
    return DataLoader(samples, batch_sampler=sampler, num_workers=workers, collate_fn=collate,
                      pin_memory=torch.cuda.is_available(), worker_init_fn=init if workers else None,
                      # Seeded so that the worker base_seed draw never touches the global torch RNG.
                      generator=torch.Generator().manual_seed(seed % 2**63),
                      persistent_workers=persistent_workers and workers > 0, in_order=True)


class TrainLoader:
    """Training batches of one rank (``Batch``), epoch after epoch, from one DataLoader.

    The protocol: ``set_epoch(epoch, start_batch)`` selects what to yield, then iterate; ``len`` is the number of
    batches that yields and ``batches_per_epoch`` the count of a whole epoch, both read from the batch sampler
    (no worker starts). Each ``set_epoch`` restarts what a freshly built loader would start from (the worker seed
    generator and the reference recipe's augmentation stream), so reusing one loader for every epoch yields the
    same batches as building one per epoch.
    """

    def __init__(self, samples: AugmentedKitti, sampler: ShardedBatchSampler, workers: int,
                 persistent_workers: bool, seed: int):
        self.samples, self.sampler, self.seed = samples, sampler, seed
        self.loader = _loader(samples, sampler, workers, persistent_workers, seed)

    @property
    def epoch(self) -> int:
        return self.sampler.epoch

    @property
    def batches_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        """Yield epoch ``epoch`` from its global batch ``start_batch`` on (resume) when next iterated."""
        self.sampler.set_epoch(epoch, start_batch)
        self.loader.generator.manual_seed(self.seed % 2**63)
        self.samples.restart_stream()

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self):
        return iter(self.loader)


def build_train_loader(dataset, seed: int, batch_size: int, base_size, workers: int, epoch: int = 0,
                       start_batch: int = 0, rank: int = 0, world_size: int = 1, persistent_workers: bool = False,
                       multiscale: bool = True, scale_every: int = 10, aug: AugmentConfig = AugmentConfig(),
                       aug_rng: str = "per_sample", accumulate: int = 1, aug_seed: int | None = None) -> TrainLoader:
    """Training batches of a KittiDataset for one rank (a ``TrainLoader``, which yields ``Batch``).

    Args:
        base_size: (W, H) network input, multiples of 32; with ``multiscale`` the size of each block of
            ``scale_every`` batches is drawn from ``multiscale_sizes(base_size)``.
        epoch, start_batch: where the first iteration starts (resume); afterwards call ``loader.set_epoch(e)``
            before each epoch e.
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
    return TrainLoader(AugmentedKitti(dataset, aug_seed, aug, aug_rng), sampler, workers, persistent_workers, seed)


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


def endless(loader: TrainLoader):
    """Training batches without end, epoch after epoch (for benchmarks; with persistent workers there is no
    restart cost at epoch boundaries)."""
    epoch = loader.epoch
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1

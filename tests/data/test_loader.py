"""The loader's promise: batches are a pure function of (seed, epoch, batch), whatever the workers, process, resume."""
import hashlib
import os
import pickle
import random
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.kitti import KittiDataset
from data.loader import build_eval_loader, build_train_loader
from data.sampler import ShardedBatchSampler, multiscale_sizes
from data.transforms import NO_AUGMENT, AugmentConfig, letterbox, letterbox_boxes
from tests.conftest import REPO

CLASSES = ("Car", "Pedestrian", "Cyclist")  # Van objects stay in the labels, untrained
FULL = AugmentConfig(flip_p=0.5, hsv=(0.015, 0.7, 0.4), scale=(0.5, 1.5), translate=0.1)
BASE, BATCH, EPOCHS, SEED = (160, 64), 4, 3, 1234


def make_kitti(root: Path, num: int = 12) -> Path:
    """``num`` noise frames at two quarter-KITTI sizes with random Car/Pedestrian/Van/Cyclist/DontCare labels."""
    rng = np.random.default_rng(99)
    for sub in ("image_2", "label_2"):
        (root / "training" / sub).mkdir(parents=True)
    names = ("Car", "Pedestrian", "Van", "Cyclist", "DontCare")
    for i in range(num):
        w, h = (311, 94) if i % 2 else (306, 92)
        cv2.imwrite(str(root / "training" / "image_2" / f"{i:06d}.png"), rng.integers(0, 256, (h, w, 3), np.uint8))
        lines = []
        for _ in range(rng.integers(0, 6)):
            x1, y1 = rng.uniform(0, w - 20), rng.uniform(0, h - 10)
            x2, y2 = rng.uniform(x1 + 4, w), rng.uniform(y1 + 4, h)
            lines.append(f"{names[rng.integers(5)]} 0.00 0 0.0 {x1:.2f} {y1:.2f} {x2:.2f} {y2:.2f} 1 1 1 1 1 10 0")
        (root / "training" / "label_2" / f"{i:06d}.txt").write_text("\n".join(lines))
    (root / "ImageSets").mkdir()
    (root / "ImageSets" / "train.txt").write_text("\n".join(f"{i:06d}" for i in range(num)))
    return root


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return KittiDataset(make_kitti(tmp_path_factory.mktemp("kitti")), "train", classes=CLASSES)


def batch_digest(batch) -> str:
    h = hashlib.sha256()
    for tensor in (batch.images, batch.targets, batch.ignore):
        h.update(str((tensor.dtype, tuple(tensor.shape))).encode())
        h.update(tensor.numpy().tobytes())
    h.update(repr((batch.ids, batch.size, batch.epoch, batch.batch_index, batch.letterbox)).encode())
    return h.hexdigest()


def epoch_digests(loader, epochs=range(EPOCHS)) -> list[str]:
    digests = []
    for epoch in epochs:
        loader.set_epoch(epoch)
        digests += [batch_digest(b) for b in loader]
    return digests


def train_loader(dataset, workers=0, **kwargs):
    kwargs = {"seed": SEED, "aug": FULL, "scale_every": 2, **kwargs}
    return build_train_loader(dataset, batch_size=BATCH, base_size=BASE, workers=workers, **kwargs)


def run_digest(root: str, workers: int) -> str:
    """Digest of all batches of the first EPOCHS epochs; called in a fresh interpreter by the cross-process test."""
    dataset = KittiDataset(root, "train", classes=CLASSES)
    return hashlib.sha256("".join(epoch_digests(train_loader(dataset, workers))).encode()).hexdigest()


def test_batches_identical_for_any_workers_and_persistence(dataset):
    reference = epoch_digests(train_loader(dataset, 0))
    assert len(reference) == EPOCHS * 3 and len(set(reference)) == len(reference)
    for workers, persistent in ((1, False), (2, False), (2, True)):
        loader = train_loader(dataset, workers, persistent_workers=persistent)
        assert epoch_digests(loader) == reference, (workers, persistent)


def test_batches_identical_in_two_separate_processes(dataset):
    code = "import sys; from tests.data.test_loader import run_digest; print(run_digest(sys.argv[1], int(sys.argv[2])))"
    procs = [subprocess.Popen([sys.executable, "-c", code, str(dataset.root), str(workers)], cwd=REPO, text=True,
                              stdout=subprocess.PIPE, env={**os.environ, "PYTHONHASHSEED": str(workers)})
             for workers in (0, 2)]
    outputs = [proc.communicate(timeout=300)[0].strip() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    assert outputs[0] == outputs[1] == run_digest(str(dataset.root), 0)


def test_resume_mid_epoch_yields_exactly_the_remaining_batches(dataset):
    uninterrupted = epoch_digests(train_loader(dataset), epochs=(1, 2))
    for start, workers in ((0, 0), (1, 0), (2, 2), (3, 0)):
        loader = train_loader(dataset, workers, epoch=1, start_batch=start)
        assert len(loader) == 3 - start
        resumed = [batch_digest(b) for b in loader] + epoch_digests(loader, epochs=(2,))
        assert resumed == uninterrupted[start:], start


@pytest.mark.parametrize("aug_rng, workers", [("per_sample", 0), ("worker_stream", 0), ("worker_stream", 2)])
def test_one_loader_moved_by_set_epoch_yields_what_a_loader_per_epoch_does(dataset, aug_rng, workers):
    """The trainer keeps one loader and calls set_epoch; the reference recipe's stream restarts every epoch as in
    a freshly built loader. ``len`` follows set_epoch (batches from start_batch on)."""
    per_epoch = [batch_digest(b) for e in range(EPOCHS)
                 for b in train_loader(dataset, workers, epoch=e, aug_rng=aug_rng)]
    loader = train_loader(dataset, workers, aug_rng=aug_rng)
    assert epoch_digests(loader) == per_epoch
    loader.set_epoch(1, 2)
    assert len(loader) == 1 and loader.batches_per_epoch == 3 and loader.epoch == 1


def test_global_rng_neither_used_nor_changed(dataset):
    digests = []
    for seed in (0, 1):
        random.seed(seed), np.random.seed(seed), torch.manual_seed(seed)
        states = random.getstate(), np.random.get_state(), torch.get_rng_state()
        digests.append(epoch_digests(train_loader(dataset, 2)) + epoch_digests(train_loader(dataset, 0)))
        assert random.getstate() == states[0]
        after = np.random.get_state()
        assert all(np.array_equal(a, b) for a, b in zip(after, states[1]))
        assert torch.equal(torch.get_rng_state(), states[2])
    assert digests[0] == digests[1]


def test_different_seeds_and_epochs_give_different_orders():
    orders = [ShardedBatchSampler(100, 4, seed, (416, 128)).order(epoch) for seed in (0, 1) for epoch in (0, 1)]
    assert all(sorted(o.tolist()) == list(range(100)) for o in orders)
    assert len({tuple(o.tolist()) for o in orders}) == 4


def test_multiscale_sizes_hand_computed():
    assert multiscale_sizes((416, 128)) == [(320, 96), (352, 96), (384, 128), (416, 128), (448, 128), (480, 160),
                                            (512, 160)]
    assert multiscale_sizes(BASE) == [(128, 64), (160, 64), (192, 64)]


def test_sizes_constant_within_blocks_and_shards_agree_with_single_process():
    every, world, per_rank = 3, 2, 4
    single = list(ShardedBatchSampler(400, per_rank * world, 5, (416, 128), scale_every=every))
    ranks = [list(ShardedBatchSampler(400, per_rank, 5, (416, 128), scale_every=every, rank=r, world_size=world))
             for r in range(world)]
    assert len(single) == len(ranks[0]) == len(ranks[1]) == 50
    sizes = [batch[0].size for batch in single]
    assert all(sizes[g] == sizes[g - g % every] for g in range(50)) and len(set(sizes)) > 2
    for g, batch in enumerate(single):
        shards = [ranks[r][g] for r in range(world)]
        assert all(len(s) == per_rank and {k.size for k in s} == {sizes[g]} for s in shards)
        assert [k.index for s in shards for k in s] == [k.index for k in batch]
        assert {k.batch for s in shards for k in s} == {g}


def test_collate_rows_follow_labels_and_untrained_objects_are_ignored(dataset):
    loader = train_loader(dataset, aug=NO_AUGMENT, multiscale=False)
    for batch in loader:
        assert batch.images.dtype == torch.uint8 and tuple(batch.images.shape) == (BATCH, 3, BASE[1], BASE[0])
        assert batch.targets.dtype == batch.ignore.dtype == torch.float32
        targets, ignore = [], []
        for b, frame_id in enumerate(batch.ids):
            i = dataset.ids.index(frame_id)
            labels, lb = dataset.labels[i], batch.letterbox[b]
            cls = dataset.class_index(labels.names)
            boxes = letterbox_boxes(labels.boxes, lb)
            targets += [[b, c, *box] for c, box in zip(cls, boxes) if c >= 0]
            ignore += [[b, *box] for box in letterbox_boxes(labels.dontcare, lb)]
            ignore += [[b, *box] for c, box in zip(cls, boxes) if c < 0]
            image, _ = letterbox(dataset.load_image(i), BASE)
            assert np.array_equal(batch.images[b].numpy(), image.transpose(2, 0, 1))
        assert np.array_equal(batch.targets.numpy(), np.array(targets, np.float32).reshape(-1, 6))
        assert np.array_equal(batch.ignore.numpy(), np.array(ignore, np.float32).reshape(-1, 5))
    assert pickle.loads(pickle.dumps(batch)).ids == batch.ids


def test_eval_loader_covers_every_frame_in_order_at_a_fixed_size(dataset):
    batches = list(build_eval_loader(dataset, 5, (192, 64), 2))
    assert [len(b.ids) for b in batches] == [5, 5, 2]
    assert [i for b in batches for i in b.ids] == dataset.ids
    assert {b.size for b in batches} == {(192, 64)}
    first, _ = letterbox(dataset.load_image(0), (192, 64))
    assert np.array_equal(batches[0].images[0].numpy(), first.transpose(2, 0, 1))
    subset = list(build_eval_loader(dataset, 2, (192, 64), 0, indices=[7, 2, 9]))
    assert [b.ids for b in subset] == [[dataset.ids[7], dataset.ids[2]], [dataset.ids[9]]]


@pytest.mark.parametrize("kwargs", [{"batch_size": 13}, {"start_batch": 4}, {"seed": -1}, {"rank": 2, "world_size": 2},
                                    {"drop_last": False, "world_size": 2}, {"base_size": (100, 64)},
                                    {"indices": [0, 1, 2, 12]}, {"indices": [1, 1, 2, 3]}])
def test_sampler_rejects_bad_arguments(kwargs):
    kwargs = {"num_samples": 12, "batch_size": 4, "seed": 0, "base_size": BASE, **kwargs}
    with pytest.raises(ValueError):
        ShardedBatchSampler(**kwargs)


def test_batch_is_pinned_field_by_field(dataset, monkeypatch):
    # DataLoader(pin_memory=True) calls Batch.pin_memory(); pinning needs CUDA, so stand in a copy for it here.
    from torch.utils.data._utils.pin_memory import pin_memory
    batch = next(iter(train_loader(dataset)))
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: self.clone())
    pinned = pin_memory(batch)
    assert type(pinned) is type(batch) and pinned.ids == batch.ids and pinned.size == batch.size
    assert all(torch.equal(getattr(pinned, f), getattr(batch, f)) for f in ("images", "targets", "ignore"))
    assert pinned.images.is_pinned() == torch.cuda.is_available()

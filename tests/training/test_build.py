"""training/build.py: each source of randomness has its own seed, and changing one changes only what it should."""
import dataclasses

import numpy as np
import pytest
import torch

from tests.conftest import REPO
from training import build
from training.config import TrainConfig, source_seed, validate

TINY = validate(dataclasses.replace(TrainConfig(), synthetic_num=16, img_size=(256, 96), batch_size=4,
                                    synthetic_cache=str(REPO / ".cache" / "synthetic"), device="cpu"))


def initial_weights(cfg: TrainConfig) -> dict:
    with torch.random.fork_rng():
        return build.model(cfg, torch.device("cpu")).state_dict()


def epoch_batches(cfg: TrainConfig, epoch: int = 1) -> list:
    """(frame ids, input size, image bytes) of every batch of one epoch."""
    data = build.dataset(cfg, cfg.train_split)
    loader = build.train_loader(cfg, data, epoch, 0)
    return [(b.ids, b.size, b.images.numpy().tobytes()) for b in loader]


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


def test_source_seeds_default_to_the_run_seed():
    assert [source_seed(TINY, s) for s in ("init", "order", "aug")] == [TINY.seed] * 3
    assert source_seed(dataclasses.replace(TINY, seed_order=5), "order") == 5


def test_seed_init_changes_the_initial_weights_and_nothing_of_the_data():
    other = dataclasses.replace(TINY, seed_init=7)
    assert not same_weights(initial_weights(TINY), initial_weights(other))
    assert epoch_batches(TINY) == epoch_batches(other)


def per_frame(batches) -> dict:
    """frame id -> its augmented image bytes."""
    return {i: img.tobytes() for ids, _, images in batches
            for i, img in zip(ids, np.array_split(np.frombuffer(images, np.uint8), len(ids)))}


def test_seed_order_changes_the_order_only():
    fixed = dataclasses.replace(TINY, multiscale=False)  # one input size, so a frame's image can be compared
    other = dataclasses.replace(fixed, seed_order=7)
    assert same_weights(initial_weights(fixed), initial_weights(other))
    base, changed = epoch_batches(fixed), epoch_batches(other)
    assert [ids for ids, _, _ in base] != [ids for ids, _, _ in changed]
    # a frame gets the same augmentation wherever it lands: it is keyed by (aug seed, epoch, frame)
    a, b = per_frame(base), per_frame(changed)
    shared = set(a) & set(b)
    assert shared and all(a[k] == b[k] for k in shared)


def test_seed_aug_keeps_the_batch_order_and_changes_the_augmentation():
    flip = dataclasses.replace(TINY, multiscale=False)
    other = dataclasses.replace(flip, seed_aug=11)
    assert same_weights(initial_weights(flip), initial_weights(other))
    base, changed = epoch_batches(flip), epoch_batches(other)
    assert [ids for ids, _, _ in base] == [ids for ids, _, _ in changed]
    assert [img for _, _, img in base] != [img for _, _, img in changed]  # other flips


@pytest.mark.parametrize("key", ["seed_init", "seed_order", "seed_aug"])
def test_bad_source_seed_is_refused(key):
    with pytest.raises(ValueError, match=key):
        validate(dataclasses.replace(TINY, **{key: -2}))

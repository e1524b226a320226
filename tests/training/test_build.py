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


def test_a_step_record_fetches_losses_and_fingerprint_in_one_transfer():
    """The accelerator path of training.step._record (exercised on CPU tensors): the losses and the parameters'
    on-device fingerprint come back bit-exact from one int32 transfer; the CPU path uses the sha256 prefix."""
    from types import SimpleNamespace

    from training.step import Position, _record
    from utils.fingerprint import device_fingerprint, f32_hex, weights_sha256
    model = torch.nn.Linear(3, 2)
    losses = torch.tensor([0.5, 1.25, -0.0, 1.75])
    batch, cfg = SimpleNamespace(size=(64, 32)), SimpleNamespace(fingerprint_every=5)
    device = _record(model, Position(step=10), cfg, 0.1, batch, losses, host_fingerprint=False)
    host = _record(model, Position(step=10), cfg, 0.1, batch, losses, host_fingerprint=True)
    assert device["fingerprint"] == device_fingerprint(model.state_dict().values())
    assert host["fingerprint"] == weights_sha256(model.state_dict())[:16]
    assert [device[k] for k in ("box", "obj", "cls", "total")] == [0.5, 1.25, 0.0, 1.75]
    assert device["loss_f32"] == f32_hex(1.75)
    assert "fingerprint" not in _record(model, Position(step=11), cfg, 0.1, batch, losses, host_fingerprint=False)


@pytest.mark.parametrize("key, value", [("obj_norm", "cells"), ("box_loss", "sigmoid_l2")])
def test_loss_options_reach_the_training_step(key, value):
    """--obj-norm and --box-loss change the loss the step optimises (obj_norm: by 416*128 / the input's area)."""
    from training.step import forward_loss
    batch = next(iter(build.train_loader(TINY, build.dataset(TINY, TINY.train_split), 1, 0)))
    model = build.model(TINY, torch.device("cpu"))
    other = dataclasses.replace(TINY, **{key: value})
    with torch.no_grad():
        base = forward_loss(model, model.heads, batch, torch.device("cpu"), TINY)
        changed = forward_loss(model, model.heads, batch, torch.device("cpu"), other)
    if key == "obj_norm":
        ratio = 416 * 128 / (batch.size[0] * batch.size[1])
        torch.testing.assert_close(changed["obj"], base["obj"] * ratio)
        assert torch.equal(changed["box"], base["box"])
    else:
        assert not torch.equal(changed["box"], base["box"]) and torch.equal(changed["obj"], base["obj"])


def test_weights_of_another_class_count_load_all_but_the_heads(tmp_path):
    """A whole darknet model of the same cfg with 80 classes (darknet's COCO weights for the 8-class KITTI cfg):
    every layer but the two head convolutions is copied; the heads keep the --seed init; the global RNG is untouched
    by the 80-class vessel model."""
    from models.darknet import Darknet
    from models.weights import save_darknet_weights
    model_cfg = str(REPO / "cfg" / "yolov3-tiny-kitti.cfg")
    with torch.random.fork_rng():
        torch.manual_seed(5)
        coco = Darknet(model_cfg, num_classes=80)
    save_darknet_weights(coco, tmp_path / "coco.weights")
    cfg = validate(dataclasses.replace(TINY, model=model_cfg, weights=str(tmp_path / "coco.weights")))
    scratch = initial_weights(dataclasses.replace(cfg, weights=""))
    with torch.random.fork_rng():
        net = build.model(cfg, torch.device("cpu"))
        message = build.initial_weights(net, cfg)
        after = torch.rand(3)
    with torch.random.fork_rng():
        build.model(cfg, torch.device("cpu"))
        assert torch.equal(after, torch.rand(3))  # loading drew nothing from the global RNG
    assert message.endswith("(80 classes); head layers 15, 22 (another class count) left at init")
    state, source = net.state_dict(), coco.state_dict()
    for key, value in state.items():
        head = key.startswith(("module_list.15.", "module_list.22."))
        assert torch.equal(value, scratch[key] if head else source[key]), key

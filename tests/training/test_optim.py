"""training/optim.py: the lr schedule by hand (burn-in, cosine, step), burn-in counted in images, the refusals, and
the weight-decay groups."""
from dataclasses import dataclass

import pytest
from torch import nn

from training.optim import Schedule, make_optimizer, make_schedule, set_lr


@dataclass(frozen=True)
class Cfg:
    lr: float = 1.0
    burn_in_images: int = 32
    schedule: str = "cosine"
    lr_steps: tuple = (0.5, 0.75)
    lr_final: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9


def test_burn_in_is_a_fourth_power_ramp_to_the_peak():
    s = Schedule(1.0, burn_in_steps=4, total_steps=100)
    assert [s.lr_at(k) for k in range(4)] == [1 / 256, 16 / 256, 81 / 256, 1.0]


def test_cosine_from_peak_to_final_fraction():
    s = Schedule(1.0, burn_in_steps=4, total_steps=100, lr_final=0.1)  # 96 steps after a 4-step burn-in
    assert s.lr_at(4) == 1.0
    assert s.lr_at(52) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert s.lr_at(100) == pytest.approx(0.1)


def test_step_schedule_divides_by_ten_at_each_fraction():
    s = Schedule(1.0, 4, 100, kind="step", lr_steps=(0.5, 0.75))
    assert [s.lr_at(k) for k in (4, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


@pytest.mark.parametrize("images_per_step, burn_in_steps", [(8, 4), (16, 2), (32, 1), (12, 3)])
def test_burn_in_in_images_is_the_same_at_any_batch(images_per_step, burn_in_steps):
    """32 images of burn-in: 4 steps of 8 images, 2 of 16, 1 of 32; 12 images a step round up to 3 steps."""
    assert make_schedule(Cfg(), images_per_step, total_steps=100).burn_in_steps == burn_in_steps


def test_a_burn_in_longer_than_training_is_refused_with_both_numbers():
    with pytest.raises(ValueError, match=r"32 images = 4 optimizer steps of 8 images.*only 4 steps"):
        make_schedule(Cfg(), 8, total_steps=4)
    with pytest.raises(ValueError, match=r"decays at step 2 of 4, before the peak"):
        make_schedule(Cfg(schedule="step", burn_in_images=24), 8, total_steps=4)
    assert make_schedule(Cfg(), 8, total_steps=5).burn_in_steps == 4


def test_set_lr_sets_every_group_and_decay_only_on_conv_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    opt = make_optimizer(model, Cfg())
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3, 3, 3), (2, 4, 1, 1)] and decay["weight_decay"] == 5e-4
    assert [p.shape for p in no_decay["params"]] == [(4,), (4,), (2,)] and no_decay["weight_decay"] == 0.0
    assert set_lr(opt, 1, Schedule(1.0, 4, 100)) == 16 / 256
    assert [g["lr"] for g in opt.param_groups] == [16 / 256, 16 / 256]

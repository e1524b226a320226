"""training/optim.py: the lr schedule by hand (burn-in, cosine, step) and the weight-decay groups."""
from dataclasses import dataclass

import pytest
from torch import nn

from training.optim import lr_at, make_optimizer, set_lr


@dataclass(frozen=True)
class Sched:
    lr: float = 1.0
    burn_in: int = 4
    schedule: str = "cosine"
    lr_steps: tuple = (0.5, 0.75)
    lr_final: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9


def test_burn_in_is_a_fourth_power_ramp_to_the_peak():
    assert [lr_at(s, Sched(), 100) for s in range(4)] == [1 / 256, 16 / 256, 81 / 256, 1.0]


def test_cosine_from_peak_to_final_fraction():
    cfg = Sched()  # 96 steps after a 4-step burn-in
    assert lr_at(4, cfg, 100) == 1.0
    assert lr_at(52, cfg, 100) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert lr_at(100, cfg, 100) == pytest.approx(0.1)


def test_step_schedule_divides_by_ten_at_each_fraction():
    cfg = Sched(schedule="step")
    assert [lr_at(s, cfg, 100) for s in (4, 49, 50, 74, 75, 99)] == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])


def test_set_lr_sets_every_group_and_decay_only_on_conv_weights():
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))
    opt = make_optimizer(model, Sched())
    decay, no_decay = opt.param_groups
    assert [p.shape for p in decay["params"]] == [(4, 3, 3, 3), (2, 4, 1, 1)] and decay["weight_decay"] == 5e-4
    assert [p.shape for p in no_decay["params"]] == [(4,), (4,), (2,)] and no_decay["weight_decay"] == 0.0
    assert set_lr(opt, 1, Sched(), 100) == 16 / 256
    assert [g["lr"] for g in opt.param_groups] == [16 / 256, 16 / 256]

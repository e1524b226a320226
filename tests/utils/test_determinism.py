"""utils/determinism.py: each determinism mode sets exactly its switches; seeding makes the global RNGs repeat.

``configure`` changes process-global state, so every test here restores it afterwards (the fixture), and the
cross-process guarantee is left to the reproduction tests.
"""
import os
import random

import numpy as np
import pytest
import torch

from utils import determinism


@pytest.fixture
def restore_globals():
    flags = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
             torch.utils.deterministic.fill_uninitialized_memory, torch.backends.cudnn.enabled,
             torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic, torch.get_num_threads())
    env = {k: os.environ.get(k) for k in ("CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED")}
    rng = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    yield
    torch.use_deterministic_algorithms(flags[0], warn_only=flags[1])
    torch.utils.deterministic.fill_uninitialized_memory = flags[2]
    torch.backends.cudnn.enabled, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[3:6]
    torch.set_num_threads(flags[6])
    for key, value in env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    random.setstate(rng[0])
    np.random.set_state(rng[1])
    torch.set_rng_state(rng[2])


EXPECTED = {  # mode -> switches that must hold after configure(mode, ...)
    "strict": {"use_deterministic_algorithms": True, "deterministic_warn_only": False, "cudnn_enabled": True,
               "cudnn_benchmark": False, "cudnn_deterministic": True, "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
               "upsample": "deterministic", "augmentation_rng": "per_sample"},
    "reference": {"use_deterministic_algorithms": False, "cudnn_enabled": False, "cudnn_benchmark": False,
                  "cudnn_deterministic": True, "PYTHONHASHSEED": "7", "upsample": "interpolate",
                  "augmentation_rng": "worker_stream"},
    "off": {"use_deterministic_algorithms": False, "cudnn_enabled": True, "cudnn_benchmark": True,
            "cudnn_deterministic": False, "upsample": "interpolate", "augmentation_rng": "per_sample"},
}


@pytest.mark.parametrize("mode", sorted(EXPECTED))
def test_each_mode_sets_its_switches(mode, restore_globals, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    switches = determinism.configure(mode, 7, threads=1, fill_uninitialized_memory=False)
    assert {k: switches[k] for k in EXPECTED[mode]} == EXPECTED[mode]
    assert switches["mode"] == mode and switches["seed"] == 7 and switches["torch_threads"] == 1
    assert torch.are_deterministic_algorithms_enabled() is (mode == "strict")
    assert torch.backends.cudnn.benchmark is (mode == "off")


@pytest.mark.parametrize("fill", [False, True])
def test_fill_uninitialized_memory_is_a_strict_switch(fill, restore_globals):
    assert determinism.configure("strict", 0, threads=1, fill_uninitialized_memory=fill)[
        "fill_uninitialized_memory"] is fill


def test_fill_uninitialized_memory_has_one_default():
    """configure has no default of its own: a caller passes TrainConfig's, the one default (training and inference
    builds alike)."""
    with pytest.raises(TypeError, match="fill_uninitialized_memory"):
        determinism.configure("strict", 0, 1)


def test_same_seed_repeats_every_global_rng(restore_globals):
    def draws():
        return random.random(), float(np.random.random()), float(torch.rand(1))
    determinism.configure("strict", 202003, threads=1, fill_uninitialized_memory=False)
    first = draws()
    determinism.configure("strict", 202003, threads=1, fill_uninitialized_memory=False)
    assert draws() == first
    determinism.configure("strict", 202004, threads=1, fill_uninitialized_memory=False)
    assert draws() != first


@pytest.mark.parametrize("args, message", [(("fast", 0, 1), "mode"), (("strict", -1, 1), "seed"),
                                           (("strict", 2**63, 1), "seed"), (("strict", 0, 0), "threads")])
def test_bad_arguments_are_refused(args, message, restore_globals):
    with pytest.raises(ValueError, match=message):
        determinism.configure(*args, fill_uninitialized_memory=False)

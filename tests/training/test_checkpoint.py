"""Checkpoint files: atomic writes, weights_only loading, RNG round trip, refusal of foreign files."""
import random

import numpy as np
import pytest
import torch

from training import checkpoint


def test_rng_states_round_trip_and_load_weights_only(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    checkpoint.save(tmp_path / "c.pt", {"rng": checkpoint.capture_rng()})
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    checkpoint.restore_rng(checkpoint.load(tmp_path / "c.pt")["rng"])  # load uses weights_only=True
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_save_leaves_no_temporary_file(tmp_path):
    checkpoint.save(tmp_path / "last.pt", {"x": torch.ones(2)})
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_foreign_and_damaged_files_are_refused(tmp_path):
    torch.save({"model": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a checkpoint of this repo"):
        checkpoint.load(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="junk.pt: not a loadable checkpoint"):
        checkpoint.load(tmp_path / "junk.pt")


def test_model_mismatch_names_keys():
    saved = {"a.weight": torch.zeros(2, 3), "b.bias": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"shape mismatch a.weight \(2, 3\) vs \(4, 3\)"):
        checkpoint.check_model_state("x.pt", saved, {"a.weight": torch.zeros(4, 3), "b.bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="missing"):
        checkpoint.check_model_state("x.pt", saved, {**saved, "c.weight": torch.zeros(1)})


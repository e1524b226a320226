"""The fault catalogue of checkpoints and initial weights: files that are not checkpoints, weights that load nothing,
an interrupt while the checkpoint writer starts, and the advice of a diverged run."""
import os
import threading

import numpy as np
import pytest
import torch

from tests.faults.conftest import assert_one_error_line, train
from training import checkpoint
from training.build import model
from training.config import from_dict

PROG = "train.py"
TORCH_ADVICE = ("weights_only", "PyTorch", "arbitrary code")


def darknet_header_only(path) -> None:
    """What darknet writes before any layer: int32 major 0, minor 2, revision 0, then int64 images seen."""
    path.write_bytes(np.array([0, 2, 0], "<i4").tobytes() + np.array([0], "<i8").tobytes())


def test_user_resumes_random_bytes_or_a_renamed_darknet_file(tmp_path):
    noise = tmp_path / "last.pt"
    noise.write_bytes(os.urandom(4096))
    line = assert_one_error_line(train(tmp_path, "x", "--resume", str(noise)), PROG, str(noise),
                                 "not a file torch.save wrote")
    assert not any(advice in line for advice in TORCH_ADVICE), line
    renamed = tmp_path / "yolo.pt"
    darknet_header_only(renamed)
    with open(renamed, "ab") as f:
        f.write(np.zeros(1000, "<f4").tobytes())
    line = assert_one_error_line(train(tmp_path, "y", "--weights", str(renamed)), PROG, str(renamed),
                                 "darknet .weights file", "name ending in .weights")
    assert not any(advice in line for advice in TORCH_ADVICE), line


def test_user_gives_weights_holding_only_darknets_header(tmp_path):
    """A .weights file of 20 bytes loads no layer: an error, not a run from scratch that records it as its start."""
    empty = tmp_path / "empty.weights"
    darknet_header_only(empty)
    done = train(tmp_path, "x", "--weights", str(empty))
    assert_one_error_line(done, PROG, str(empty), "no layer")
    assert not (tmp_path / "x").exists()


def test_user_presses_ctrl_c_as_the_checkpoint_writer_starts(tmp_path, monkeypatch):
    """The interrupt lands inside Thread.start(): the writer's wait() (run by every cleanup) must not fail with
    'cannot join thread before it is started', which turned the exit code 130 into 1."""
    def interrupted_start(self):
        raise KeyboardInterrupt
    writer = checkpoint.BackgroundWriter()
    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        writer.submit(tmp_path / "last.pt", {"step": 1})
    monkeypatch.undo()
    writer.wait()
    assert not (tmp_path / "last.pt").exists()


def test_a_healthy_checkpoint_is_judged_sane_for_a_new_start(finished_run):
    """The other side of the divergence advice: a trained run's checkpoints pass the parameter check."""
    names = [n for n, _ in model(from_dict(checkpoint.load(finished_run / "last.pt")["config"]),
                                 torch.device("cpu")).named_parameters()]
    for name in ("last.pt", "best.pt"):
        assert checkpoint.largest_parameter(finished_run / name, names) <= checkpoint.SANE_PARAMETER_LIMIT

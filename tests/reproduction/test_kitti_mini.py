"""The real-data preset, cfg/kitti-mini.yaml, on real KITTI frames (skipped without ../shared): darknet's COCO
YOLOv3-tiny fine-tuned on kitti_mini's train frames gives the same bits in two separate processes, and a run stopped
mid-epoch and resumed reaches them too. A short run of the same preset (one epoch at 416x128) keeps CI fast."""
from pathlib import Path

import pytest

from tests.conftest import REPO, fingerprints, run_python, run_summary, shared_path
from training import checkpoint

SHORT = ["--epochs", "1", "--img-size", "416,128", "--threads", "1"]


def train(project: Path, name: str, *extra: str):
    return run_python(str(REPO / "train.py"), "--config", str(REPO / "cfg" / "kitti-mini.yaml"),
                      "--data", str(shared_path("kitti_mini")),
                      "--weights", str(shared_path("darknet_weights", "yolov3-tiny.weights")),
                      "--project", str(project), "--name", name, *SHORT, *extra)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    project = tmp_path_factory.mktemp("kitti_mini")
    train(project, "a")
    return project


def test_the_preset_on_real_frames_gives_the_same_bits_in_two_processes(runs):
    train(runs, "b")
    assert fingerprints(runs / "a") == fingerprints(runs / "b")
    summary = run_summary(runs / "a")
    assert summary["steps"] == 5  # 44 real train frames in batches of 8: 5 whole batches
    assert summary["final"]["kitti"]["Car"]["AP40"]["moderate"] > 0


def test_the_preset_resumed_mid_epoch_reaches_the_same_bits(runs):
    stopped = train(runs, "resumed", "--stop-after", "2")
    assert "stopped after optimizer step 2" in stopped.stdout
    assert checkpoint.load(runs / "resumed" / "last.pt")["batch"] == 2
    run_python(str(REPO / "train.py"), "--resume", str(runs / "resumed" / "last.pt"))
    assert fingerprints(runs / "resumed") == fingerprints(runs / "a")

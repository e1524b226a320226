"""The real-data preset, cfg/kitti-mini.yaml, on real KITTI frames (skipped without ../shared): darknet's COCO
YOLOv3-tiny fine-tuned on kitti_mini's train frames gives the same bits in two separate processes, and a run stopped
mid-epoch and resumed reaches them too. A short run of the same preset (one epoch, trained and evaluated at 416x128) keeps CI fast."""
import dataclasses
from pathlib import Path

import pytest

from tests.conftest import REPO, fingerprints, run_python, run_summary, shared_path
from training import checkpoint

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not

SHORT = ["--epochs", "1", "--burn-in-images", "16", "--img-size", "416,128", "--eval-size", "416,128", "--threads", "1"]


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
    assert summary["final"]["kitti"]["Car"]["AP40"]["moderate"] is not None  # scored on 67 counted val cars


def test_the_preset_resumed_mid_epoch_reaches_the_same_bits(runs):
    stopped = train(runs, "resumed", "--max-steps", "2")
    assert "stopped after optimizer step 2" in stopped.stdout
    assert checkpoint.load(runs / "resumed" / "last.pt")["batch"] == 2
    run_python(str(REPO / "train.py"), "--resume", str(runs / "resumed" / "last.pt"))
    assert fingerprints(runs / "resumed") == fingerprints(runs / "a")


def test_the_choices_table_reads_the_runs_and_names_what_differs(runs, tmp_path):
    """benchmarks/kitti_mini.py on these real-frame runs: the row's means are the runs' own metrics, and a group
    whose config differs from the base is labelled with the differing key."""
    from benchmarks import kitti_mini
    from experiment.comparison import load_run, run_metrics
    base = [load_run(runs / "a")]
    row = kitti_mini.row("base", base, base)
    assert row["choices"] == "base" and row["seeds"] == [base[0].seed]
    assert row["mean"]["kitti_Car_AP40_moderate"] == run_metrics(base[0])["kitti_Car_AP40_moderate"]
    assert row["car_curve"] == {1: run_metrics(base[0])["kitti_Car_AP40_moderate"]}  # one evaluation, after epoch 1
    other = [dataclasses.replace(base[0], config={**base[0].config, "flip_p": 0.0, "seed": 7})]
    assert kitti_mini.row("noflip", other, base)["choices"] == "flip_p=0.0"  # the seed is not a choice
    assert "| base | base | 1 |" in kitti_mini.markdown([row])
    again = kitti_mini.rescored_row("base", base, (416, 128))  # last.pt scored again at the run's own eval size
    assert again["per_run"][base[0].name]["kitti_Car_AP40_moderate"] == row["mean"]["kitti_Car_AP40_moderate"]
    assert again["per_run"][base[0].name]["coco_mAP50"] == row["mean"]["coco_mAP50"]

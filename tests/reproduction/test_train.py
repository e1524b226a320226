"""End-to-end training on the tiny CI config, each run a separate process: fingerprints, resume, crash safety."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, fingerprints, run_python
from tests.conftest import run_summary as summary
from training import checkpoint

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not

TINY = ["--config", str(REPO / "cfg" / "ci-tiny.yaml")]


def train(tmp: Path, name: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    preset = [] if "--resume" in extra else TINY  # a resumed run takes its config from the checkpoint
    return run_python(str(REPO / "train.py"), *preset, "--project", str(tmp), "--name", name, *extra, check=check)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """Two identical runs and a few variants, shared by the tests of this module (each run is ~10 s)."""
    tmp = tmp_path_factory.mktemp("runs")
    train(tmp, "a")
    train(tmp, "b")
    return tmp


def test_two_processes_give_identical_fingerprints(runs_dir):
    a, b = fingerprints(runs_dir / "a"), fingerprints(runs_dir / "b")
    assert a == b
    for name in ("config.yaml", "data_manifest.tsv"):  # the same data_sha256 and data manifest, byte for byte
        assert (runs_dir / "a" / name).read_bytes() == (runs_dir / "b" / name).read_bytes()
    files = {p.name for p in (runs_dir / "a").iterdir()}
    assert {"config.yaml", "env.json", "metrics.jsonl", "summary.json", "last.pt", "best.pt", "loss.png",
            "data_manifest.tsv"} <= files
    s = summary(runs_dir / "a")
    assert s["steps"] == 4 and s["final"]["coco"]["mAP50"] is not None
    env = json.loads((runs_dir / "a" / "env.json").read_text())
    assert env["determinism"]["use_deterministic_algorithms"] is True and env["determinism"]["torch_threads"] == 2


def test_second_run_reports_reproduction(tmp_path):
    train(tmp_path, "first")
    out = train(tmp_path, "second").stdout
    assert "REPRODUCED bit for bit" in out and "weights_sha256" in out


def test_worker_count_does_not_change_bits(runs_dir):
    train(runs_dir, "workers2", "--workers", "2")
    assert fingerprints(runs_dir / "workers2") == fingerprints(runs_dir / "a")


def test_different_seed_gives_different_bits(runs_dir):
    train(runs_dir, "seed1", "--seed", "1")
    weights, losses = fingerprints(runs_dir / "seed1")
    assert weights != fingerprints(runs_dir / "a")[0] and losses != fingerprints(runs_dir / "a")[1]


def test_resume_mid_epoch_reaches_the_same_bits(runs_dir):
    """--max-steps N stops after N optimizer steps of each invocation (separate processes), mid-epoch here; a
    resume without it reaches the uninterrupted run's bits."""
    stopped = train(runs_dir, "resumed", "--max-steps", "1")
    assert "stopped after optimizer step 1" in stopped.stdout
    ckpt = checkpoint.load(runs_dir / "resumed" / "last.pt")
    assert (ckpt["epoch"], ckpt["step"], ckpt["batch"]) == (0, 1, 1)  # mid-epoch: batch 1 of 2
    again = train(runs_dir, "unused", "--resume", str(runs_dir / "resumed" / "last.pt"), "--max-steps", "2")
    assert "stopped after optimizer step 3" in again.stdout  # 2 more than the checkpoint's step 1
    ckpt = checkpoint.load(runs_dir / "resumed" / "last.pt")
    assert (ckpt["epoch"], ckpt["step"], ckpt["batch"]) == (1, 3, 1)
    train(runs_dir, "unused", "--resume", str(runs_dir / "resumed" / "last.pt"))
    assert not (runs_dir / "unused").exists()  # a resumed run continues in its own directory
    assert fingerprints(runs_dir / "resumed") == fingerprints(runs_dir / "a")


def test_resume_refuses_another_config(runs_dir):
    done = train(runs_dir, "x", "--resume", str(runs_dir / "a" / "last.pt"), "--lr", "0.5", check=False)
    assert done.returncode != 0
    assert "differing keys" in done.stderr and "lr: 0.002 -> 0.5" in done.stderr


def test_sigkill_while_checkpointing_leaves_a_loadable_last_pt(tmp_path):
    cmd = [sys.executable, str(REPO / "train.py"), *TINY, "--project", str(tmp_path), "--name", "killed",
           "--checkpoint-every", "1", "--epochs", "50"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "killed" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    time.sleep(1.5)  # checkpoints are now being rewritten every step: kill in the middle of that
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = checkpoint.load(last)
    assert ckpt["step"] >= 1 and "model" in ckpt


def test_bad_flag_value_fails_clearly():
    done = run_python(str(REPO / "train.py"), "--epochs", "two", check=False)
    assert done.returncode != 0 and "--epochs: epochs expects int, got 'two'" in done.stderr


def test_tensorboard_events_mirror_metrics(runs_dir):
    pytest.importorskip("tensorboard", reason="tensorboard is optional; requirements.txt installs it")
    from tests.training.test_board import read_scalars
    run = runs_dir / "a"
    assert list(run.glob("events.out.tfevents.*")), "no TensorBoard event file in the run directory"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [(r["step"], pytest.approx(r["total"], rel=1e-6)) for r in lines if r["type"] == "train"]
    scalars = read_scalars(run)
    assert scalars["train/total"] == steps
    assert [s for s, _ in scalars["eval/coco/mAP50"]] == [r["step"] for r in lines if r["type"] == "eval"]


def test_accumulation_resumes_to_the_same_bits_from_mid_epoch_and_epoch_end(tmp_path):
    """accumulate 3 over 8 batches of 1 image: 2 optimizer steps an epoch and 2 batches that no step uses (they
    are not carried into the next epoch). Stopping after step 1 (mid-epoch) or 2 (epoch end) and resuming, each a
    separate process, reaches the bits of the uninterrupted run."""
    acc = ["--batch-size", "1", "--accumulate", "3", "--burn-in-images", "6"]
    train(tmp_path, "straight", *acc)
    assert summary(tmp_path / "straight")["steps"] == 4
    for stop in ("1", "2"):
        train(tmp_path, f"stop{stop}", *acc, "--max-steps", stop)
        ckpt = checkpoint.load(tmp_path / f"stop{stop}" / "last.pt")
        assert (ckpt["step"], ckpt["batch"]) == ((1, 3) if stop == "1" else (2, 0))
        train(tmp_path, "unused", "--resume", str(tmp_path / f"stop{stop}" / "last.pt"))
        assert fingerprints(tmp_path / f"stop{stop}") == fingerprints(tmp_path / "straight"), stop


def test_weights_start_training_from_their_values(tmp_path):
    """--weights: a .weights file written here starts the run from its values: the first loss differs from a
    random init and is the same in two processes; the file's sha256 is part of the config."""
    weights = tmp_path / "init.weights"
    code = ("import sys, torch; from models.darknet import Darknet; from models.weights import save_darknet_weights;"
            "torch.manual_seed(123); save_darknet_weights(Darknet('cfg/yolov3-small-kitti.cfg', num_classes=8), "
            "sys.argv[1])")
    run_python("-c", code, str(weights))
    first = {}
    for name, extra in (("w1", ["--weights", str(weights)]), ("w2", ["--weights", str(weights)]), ("rand", [])):
        out = train(tmp_path, name, "--epochs", "1", "--burn-in-images", "4", *extra).stdout
        lines = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        first[name] = next(r["loss_f32"] for r in lines if r["type"] == "train")
        if extra:
            assert f"loaded layers 0-36 (24 convolutions) from {weights}" in out
    assert first["w1"] == first["w2"] != first["rand"]
    config = (tmp_path / "w1" / "config.yaml").read_text()
    import hashlib
    assert hashlib.sha256(weights.read_bytes()).hexdigest() in config


def test_turning_the_memory_fill_off_changes_no_bit(runs_dir):
    """The default skips deterministic mode's fill of torch.empty (faster); that is only safe while no op reads
    uninitialised memory, which a run with the fill on would reveal by different bits."""
    train(runs_dir, "fill", "--fill-uninitialized-memory", "true")
    assert fingerprints(runs_dir / "fill") == fingerprints(runs_dir / "a")

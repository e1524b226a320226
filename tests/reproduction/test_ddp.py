"""DDP with torchrun on CPU (gloo): bit-reproducible at a fixed world size, and resumable mid-epoch."""
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO, fingerprints, run_python
from training import checkpoint

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not

# 8 training frames, 2 ranks x 2 images: 2 optimizer steps per epoch, 2 epochs.
DDP = ["--config", str(REPO / "cfg" / "ci-tiny.yaml"), "--batch-size", "2"]


def torchrun(tmp: Path, name: str, *extra: str) -> subprocess.CompletedProcess:
    preset = DDP[2:] if "--resume" in extra else DDP  # a resumed run takes its config from the checkpoint
    return run_python("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                      str(REPO / "train.py"), *preset, "--project", str(tmp), "--name", name, *extra)


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    torchrun(tmp, "a")
    torchrun(tmp, "b")
    return tmp


def test_two_torchrun_runs_are_identical(ddp_runs):
    assert fingerprints(ddp_runs / "a") == fingerprints(ddp_runs / "b")
    env = json.loads((ddp_runs / "a" / "env.json").read_text())
    assert (env["world_size"], env["backend"], env["per_rank_batch"]) == (2, "gloo", 2)
    assert sorted(p.name for p in ddp_runs.iterdir()) == ["a", "b"]  # rank 1 wrote no run directory


def test_ddp_resume_mid_epoch_matches_uninterrupted(ddp_runs):
    torchrun(ddp_runs, "resumed", "--max-steps", "1")
    ckpt = checkpoint.load(ddp_runs / "resumed" / "last.pt")
    assert (ckpt["step"], ckpt["batch"], ckpt["world_size"]) == (1, 1, 2)
    torchrun(ddp_runs, "ignored", "--resume", str(ddp_runs / "resumed" / "last.pt"))
    assert fingerprints(ddp_runs / "resumed") == fingerprints(ddp_runs / "a")

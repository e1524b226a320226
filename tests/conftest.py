"""Shared fixtures: the read-only ../shared folder (absent in a user's clone) and small helpers."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Path under ../shared, skipping the calling test when it is absent (a user's clone has none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only beside CI and developer checkouts)")
    return path


@pytest.fixture
def darknet_cfg_dir() -> Path:
    return shared_path("darknet_cfg")


@pytest.fixture
def kitti_sample() -> Path:
    return shared_path("kitti_sample")


def run_python(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``python ARGS`` in the repository root, each call a separate process; with ``check``, a non-zero exit fails
    the test with the command and the tail of its output."""
    cmd = [sys.executable, *args]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    if check and done.returncode:
        raise AssertionError(f"{' '.join(cmd)} failed ({done.returncode}):\n"
                             f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def run_summary(run_dir: Path) -> dict:
    """A finished run's summary.json."""
    return json.loads((run_dir / "summary.json").read_text())


def fingerprints(run_dir: Path) -> tuple[str, str]:
    """(weights_sha256, losses_sha256) of a finished run."""
    s = run_summary(run_dir)
    return s["weights_sha256"], s["losses_sha256"]

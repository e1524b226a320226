"""Shared fixtures: the read-only ../shared folder (absent in a user's clone) and small helpers."""
import fcntl
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

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


def built_once(tmp_path_factory, name: str, build: Callable[[Path], None]) -> Path:
    """The folder ``build(folder)`` makes, built once per test session even when pytest-xdist splits the session
    over worker processes (`make test` does): the first worker to ask builds it under a file lock, the others wait
    for it and reuse it. Callers only read it (copy it to change it)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # each worker's base is a folder of the session's common one
    folder, done = root / name, root / f"{name}.built"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed earlier in this session
            build(folder)
            done.touch()
    return folder

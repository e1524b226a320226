"""Fixtures of the fault catalogue: small data a test may damage, a finished tiny run, and the CLI contract check."""
import shutil
import subprocess
from pathlib import Path

import pytest

from data.synthetic import generate
from tests.conftest import REPO, run_python

TINY = ["--config", str(REPO / "cfg" / "ci-tiny.yaml")]


def fresh_data(folder: Path, num: int = 16) -> Path:
    """A new synthetic KITTI-format set (``num`` frames, half train, half val) that the test may damage."""
    generate(folder, num, seed=0)
    return folder


def train(project: Path, name: str, *extra: str, check: bool = False) -> subprocess.CompletedProcess:
    preset = [] if "--resume" in extra else TINY
    return run_python("train.py", *preset, "--project", str(project), "--name", name, *extra, check=check)


def assert_one_error_line(done: subprocess.CompletedProcess, prog: str, *fragments: str) -> str:
    """The CLI contract for a user-caused condition: non-zero exit, no traceback, exactly one ``PROG: error:`` line
    holding every fragment. Returns that line."""
    assert done.returncode != 0, f"exit 0 for a bad input:\n{done.stdout[-2000:]}"
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith(f"{prog}: error:")]
    assert len(lines) == 1, done.stderr[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: to show that nothing a user made changed."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="package")
def finished_run(tmp_path_factory) -> Path:
    """One finished tiny run (2 epochs) on its own data: runs/a with last.pt and best.pt."""
    tmp = tmp_path_factory.mktemp("finished")
    data = fresh_data(tmp / "data")
    train(tmp / "runs", "a", "--data", str(data), check=True)
    return tmp / "runs" / "a"


@pytest.fixture
def copy_of(tmp_path):
    """copy_of(path) -> a copy under tmp_path that a test may change."""
    def copy(path: Path) -> Path:
        target = tmp_path / path.name
        if path.is_dir():
            shutil.copytree(path, target)
        else:
            shutil.copy2(path, target)
        return target
    return copy

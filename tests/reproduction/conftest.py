"""The grid every reproduction test of the experiment compares against."""
from pathlib import Path

import pytest

from tests.conftest import REPO, built_once, run_python

TINY = ["--config", str(REPO / "cfg" / "ci-tiny.yaml")]
GRID = [*TINY, "--seeds", "202003,1", "--repeat", "2", "--threads", "1"]  # 4 runs: s202003-r1, -r2, s1-r1, -r2


@pytest.fixture(scope="package")
def grid(tmp_path_factory) -> Path:
    """GRID's four runs of the tiny config, each a fresh process, one at a time, plus the report: the sequential
    reference of the concurrent, resumed and Ray grids (tests/reproduction/test_grid.py), hence one thread a run.
    Built once per session, also across xdist workers."""
    def build(project: Path) -> None:
        run_python(str(REPO / "train.py"), *GRID, "--project", str(project), "--name", "g")
    return built_once(tmp_path_factory, "grid", build) / "g"

"""The grid every reproduction test of the experiment compares against."""
from pathlib import Path

import pytest

from tests.conftest import REPO, run_python

TINY = ["--config", str(REPO / "cfg" / "ci-tiny.yaml")]
GRID = [*TINY, "--seeds", "202003,1", "--repeat", "2", "--threads", "1"]  # 4 runs: s202003-r1, -r2, s1-r1, -r2


@pytest.fixture(scope="package")
def grid(tmp_path_factory) -> Path:
    """GRID's four runs of the tiny config, each a fresh process, one at a time, plus the report: the sequential
    reference of the concurrent, resumed and Ray grids (tests/reproduction/test_grid.py), hence one thread a run."""
    tmp = tmp_path_factory.mktemp("exp")
    run_python(str(REPO / "train.py"), *GRID, "--project", str(tmp), "--name", "g")
    return tmp / "g"

"""The grid as a workload: runs in parallel (--jobs), as Ray tasks (--launcher ray), resumed after a kill, and a
failed run named while the others go on. Every run's bits must equal the same run made alone, one at a time
(the ``grid`` fixture of tests/reproduction/conftest.py)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, fingerprints, run_python
from tests.reproduction.conftest import GRID, TINY

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not

RUNS = ("s202003-r1", "s202003-r2", "s1-r1", "s1-r2")


def same_bits(group: Path, reference: Path, runs=RUNS) -> None:
    for name in runs:
        assert fingerprints(group / name) == fingerprints(reference / name), name


def same_report(group: Path, reference: Path) -> None:
    """report.md of two grids of the same plan, the group folders' names aside (runs are named group/run)."""
    ours = (group / "report.md").read_text().replace(f"{group.name}/", "G/")
    assert ours == (reference / "report.md").read_text().replace(f"{reference.name}/", "G/")


def test_two_concurrent_runs_have_the_bits_of_the_sequential_ones(grid, tmp_path):
    done = run_python("train.py", *GRID, "--jobs", "2", "--project", str(tmp_path), "--name", "par")
    group = tmp_path / "par"
    same_bits(group, grid)
    same_report(group, grid)
    assert f"grid {group}: 4 runs, 0 finished before, 0 to resume, 4 to start" in done.stdout
    finished = [line for line in done.stdout.splitlines() if line.startswith("[")]
    assert len(finished) == 4 and finished[-1].startswith("[4/4] ") and "about 0 s left" in finished[-1]
    assert all(f"weights {fingerprints(group / line.split()[1][:-1])[0][:12]}" in line for line in finished)
    assert all((group / f"{name}.log").stat().st_size > 0 for name in RUNS)  # each run's output, apart


def test_a_killed_grid_resumes_to_the_same_report(grid, tmp_path):
    """Killed (the whole process group, as a crash would) while its third run trains, after that run's first
    checkpoint: the same command skips the two finished runs, resumes the third and starts the fourth."""
    command = [sys.executable, "train.py", *GRID, "--project", str(tmp_path), "--name", "g"]
    group = tmp_path / "g"
    grid_process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (group / RUNS[2] / "last.pt").exists() and grid_process.poll() is None:
            assert time.monotonic() < deadline, "the grid never reached its third run's checkpoint"
            time.sleep(0.05)
    finally:
        os.killpg(grid_process.pid, signal.SIGKILL)
        grid_process.wait()
    assert not (group / RUNS[2] / "summary.json").exists() and not (group / "report.md").exists()
    done = run_python(*command[1:])
    assert f"grid {group}: the same plan as this command; resuming it" in done.stdout
    assert f"4 runs, 2 finished before, 1 to resume ({RUNS[2]}), 1 to start" in done.stdout
    same_bits(group, grid)
    same_report(group, grid)


def test_a_failed_run_is_named_and_the_grid_goes_on(grid, tmp_path):
    """A copy of the finished grid with one run's checkpoint damaged (its resume fails) and another run gone (it
    trains again): the grid trains the missing run, names the failed one with its log, and exits non-zero."""
    group = tmp_path / "g"
    shutil.copytree(grid, group)
    (group / RUNS[1] / "summary.json").unlink()
    (group / RUNS[1] / "last.pt").write_bytes(b"not a checkpoint")
    shutil.rmtree(group / RUNS[3])
    (group / "report.md").unlink()
    done = run_python("train.py", *GRID, "--project", str(tmp_path), "--name", "g", check=False)
    assert done.returncode == 1
    assert f"{RUNS[1]}: FAILED (exit 1)" in done.stdout and str(group / f"{RUNS[1]}.log") in done.stdout
    assert "not a loadable checkpoint" in done.stdout  # the run's own error line, from its log
    assert fingerprints(group / RUNS[3]) == fingerprints(grid / RUNS[3])  # the grid went on
    error = [line for line in done.stderr.splitlines() if line.startswith("train.py: error:")]
    assert error == [f"train.py: error: 1 of 4 runs failed: {RUNS[1]} (log: {group / RUNS[1]}.log); the report is "
                     "written once every run has finished: re-run the same command to retry them"]
    assert not (group / "report.md").exists()


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is optional (requirements-ray.txt)")
def test_ray_tasks_on_a_local_cluster_have_the_bits_of_the_sequential_runs(grid, tmp_path):
    """--launcher ray without --ray-address: a local Ray cluster for the grid, each run a task of --threads CPUs."""
    done = run_python("train.py", *TINY, "--seeds", "202003,1", "--threads", "1", "--launcher", "ray", "--project",
                      str(tmp_path), "--name", "ray")
    group = tmp_path / "ray"
    same_bits(group, grid, runs=("s202003-r1", "s1-r1"))
    assert "[2/2] " in done.stdout and (group / "report.md").is_file()

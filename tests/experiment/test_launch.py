"""experiment/launch.py: device lists, the checks of --jobs/--devices/--launcher against the machine, concurrency and
one GPU per running process in the local launcher, stopping on an interrupt; the grid's progress lines."""
from __future__ import annotations

import os
import sys

import pytest

from experiment.launch import Job, LaunchSpec, LocalLauncher, available_cores, launcher_for, parse_devices
from utils.errors import UserError
from utils.progress import GridProgress


def args(**given) -> LaunchSpec:
    return LaunchSpec(**given)


def test_device_lists():
    assert parse_devices("0-3,6") == ["0", "1", "2", "3", "6"] and parse_devices("2") == ["2"]
    assert parse_devices(None) is None
    for bad in ("a", "0,0", "1-x"):
        with pytest.raises(UserError, match="--devices"):
            parse_devices(bad)


def test_the_launcher_flags_are_checked_against_the_machine(tmp_path):
    cores = available_cores()
    assert launcher_for(args(jobs=cores), "cpu", 1, tmp_path, cores).jobs == cores
    with pytest.raises(UserError, match=rf"--jobs {cores} x --threads 2 = {2 * cores} threads, but this machine "
                                        rf"gives {cores} core"):
        launcher_for(args(jobs=cores), "cpu", 2, tmp_path, 8)
    with pytest.raises(UserError, match="--devices gives each concurrent run a GPU, but the runs train on the CPU"):
        launcher_for(args(devices="0,1"), "cpu", 1, tmp_path, 8)
    assert launcher_for(args(devices="0-7"), "cuda", 2, tmp_path, 8).jobs == 8  # one run per GPU by default
    with pytest.raises(UserError, match="--jobs 3 runs at once but --devices lists 2 GPU"):
        launcher_for(args(jobs=3, devices="0,1"), "cuda", 2, tmp_path, 8)
    with pytest.raises(UserError, match="leave out --jobs and --devices"):
        launcher_for(args(launcher="ray", jobs=2), "cpu", 1, tmp_path, 8)
    with pytest.raises(UserError, match="--ray-address and --ray-timeout belong to --launcher ray"):
        launcher_for(args(ray_address="host:6379"), "cpu", 1, tmp_path, 8)
    with pytest.raises(UserError, match="--jobs must be >= 1"):
        launcher_for(args(jobs=0), "cpu", 1, tmp_path, 8)


def script(tmp_path, name: str, code: str) -> Job:
    return Job(name, (sys.executable, "-c", code), tmp_path / f"{name}.log")


def test_jobs_run_at_once(tmp_path):
    """Each job waits for the other's marker file: they finish only if they run at the same time (--jobs 2)."""
    wait = ("import pathlib, sys, time; d = pathlib.Path(sys.argv[1]); (d / '{me}').touch(); t = time.monotonic()\n"
            "while not (d / '{other}').exists():\n    time.sleep(0.05)\n    if time.monotonic() - t > 60: sys.exit(3)")
    jobs = [Job(n, (sys.executable, "-c", wait.format(me=n, other=o), str(tmp_path)), tmp_path / f"{n}.log")
            for n, o in (("a", "b"), ("b", "a"))]
    outcomes = []
    LocalLauncher(2).run(jobs, outcomes.append)
    assert sorted((o.name, o.returncode) for o in outcomes) == [("a", 0), ("b", 0)]


def test_each_running_process_gets_a_gpu_of_its_own(tmp_path):
    show = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    jobs = [script(tmp_path, f"j{i}", show) for i in range(5)]
    LocalLauncher(2, ["3", "5"]).run(jobs, lambda outcome: None)
    seen = [(tmp_path / f"j{i}.log").read_text().strip() for i in range(5)]
    assert set(seen) == {"3", "5"} and seen[0] != seen[1]


def test_an_interrupted_launcher_stops_what_runs(tmp_path):
    pid_file = tmp_path / "pid"
    slow = script(tmp_path, "slow", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); "
                                    "time.sleep(600)")
    fast = script(tmp_path, "fast", f"import os, time\nwhile not os.path.exists({str(pid_file)!r}): time.sleep(0.05)")

    def interrupt(outcome):
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        LocalLauncher(2).run([slow, fast], interrupt)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_grid_progress_counts_skipped_runs_and_estimates_the_rest():
    lines = []
    progress = GridProgress(4, skipped=1, log=lines.append)
    progress.finished("r2: 10.0 s")
    progress.finished("r3: FAILED")
    progress.close()
    assert lines[0].startswith("[2/4] r2: 10.0 s (") and " left)" in lines[0]
    assert lines[1].startswith("[3/4] r3: FAILED (")


"""The fault catalogue of grids and run directories under signals and concurrency: a grid stopped by SIGTERM or
SIGKILL stops its runs, two processes never write one run directory or one grid folder, a killed writer's temporary
files are removed on resume, and --jobs is capped at the run count."""
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from experiment.launch import LaunchSpec, available_cores, launcher_for
from tests.conftest import REPO
from tests.faults.conftest import TINY, assert_one_error_line, train
from utils.lock import LOCK_FILE

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not

PROG = "train.py"


def alive(pid: int) -> bool:
    """Is ``pid`` a live process (a zombie, dead but not yet reaped, is not)?"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_for(condition, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def lock_pid(folder: Path) -> int | None:
    try:
        text = (folder / LOCK_FILE).read_text().strip()
    except FileNotFoundError:
        return None
    return int(text) if text.isdigit() else None


def start_grid(project: Path, *extra: str) -> subprocess.Popen:
    """A long grid (200 epochs a run) of seeds 1 and 2, one run at a time; returns once its first run trains."""
    cmd = [sys.executable, "train.py", *TINY, "--project", str(project), "--name", "g", "--seeds", "1,2",
           "--threads", "1", "--epochs", "200", *extra]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: lock_pid(project / "g" / "s1-r1") is not None or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    return proc


def test_user_sends_sigterm_to_a_grid(tmp_path):
    """The grid stops its runs as on Ctrl-C and exits 143; no run trains on as an orphan, no lock is left."""
    proc = start_grid(tmp_path)
    child = lock_pid(tmp_path / "g" / "s1-r1")
    assert lock_pid(tmp_path / "g") == proc.pid
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "Traceback" not in err and "train.py: terminated" in err, err[-3000:]
    wait_for(lambda: not alive(child), 30)
    assert not (tmp_path / "g" / LOCK_FILE).exists() and not (tmp_path / "g" / "s1-r1" / LOCK_FILE).exists()


def test_user_starts_the_same_grid_twice_at_once(tmp_path):
    """The second command refuses, naming the first one's pid, and writes no stray run folder."""
    first = start_grid(tmp_path)
    try:
        second = subprocess.run([sys.executable, "train.py", *TINY, "--project", str(tmp_path), "--name", "g",
                                 "--seeds", "1,2", "--threads", "1", "--epochs", "200"],
                                cwd=REPO, capture_output=True, text=True, timeout=300)
        assert_one_error_line(second, PROG, str(tmp_path / "g"), f"in use by process {first.pid}",
                              f"kill {first.pid}")
        assert sorted(p.name for p in (tmp_path / "g").iterdir() if p.is_dir()) == ["s1-r1"]
    finally:
        first.terminate()
        first.communicate(timeout=120)


def hold(folder: Path) -> subprocess.Popen:
    """Another process (an orphaned run, say) holding ``folder``."""
    code = ("import sys, time; from utils.lock import FolderLock; FolderLock(sys.argv[1], 'run directory').acquire();"
            " print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_user_resumes_a_run_another_process_still_trains(tmp_path, finished_run, copy_of):
    run = copy_of(finished_run)
    before = (run / "metrics.jsonl").read_bytes()
    other = hold(run)
    try:
        done = train(tmp_path, "x", "--resume", str(run / "last.pt"))
        assert_one_error_line(done, PROG, str(run), f"in use by process {other.pid}")
        assert (run / "metrics.jsonl").read_bytes() == before  # not cut back, not doubled
    finally:
        other.kill()
        other.wait()


def test_user_resumes_a_run_whose_holder_died(tmp_path):
    """A lock left by a dead process (SIGKILL) is taken over; the temporary file its killed writer left is
    removed (nothing else is)."""
    assert train(tmp_path, "r", "--max-steps", "1").returncode == 0
    run = tmp_path / "r"
    other = hold(run)
    other.kill()
    other.wait()
    stale = run / ".last.pt.k2j4x9q1.tmp"
    stale.write_bytes(b"half a checkpoint")
    mine = run / "notes.tmp"
    mine.write_text("a user's file")
    done = train(tmp_path, "x", "--resume", str(run / "last.pt"), "--max-steps", "2")
    assert done.returncode == 0, done.stderr[-3000:]
    assert not stale.exists() and mine.exists() and not (run / LOCK_FILE).exists()


def test_user_sigkills_a_grid_and_runs_it_again_while_a_run_of_it_still_trains(tmp_path):
    """SIGKILL leaves the grid no time to clean up: the kernel stops its runs with it (none trains on). A run folder
    that another process still holds (an orphan of a grid on a system without that guarantee, say) is neither
    resumed nor removed by the grid command run again: it refuses, naming the holder."""
    proc = start_grid(tmp_path)
    run = tmp_path / "g" / "s1-r1"
    child = lock_pid(run)
    wait_for(lambda: (run / "last.pt").exists())
    proc.kill()
    proc.communicate(timeout=60)
    wait_for(lambda: not alive(child), 30)
    other = hold(run)
    try:
        again = subprocess.run([sys.executable, "train.py", *TINY, "--project", str(tmp_path), "--name", "g",
                                "--seeds", "1,2", "--threads", "1", "--epochs", "200"],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
        assert_one_error_line(again, PROG, str(run), f"process {other.pid}")
        assert (run / "last.pt").is_file()
    finally:
        other.kill()
        other.wait()


def test_user_asks_for_more_jobs_than_the_grid_has_runs():
    """--seeds 1,2 --jobs 5 --threads 1: two runs, so at most two processes at once, whatever the core count."""
    args = LaunchSpec(jobs=available_cores() + 3)
    runs = min(2, available_cores())
    assert launcher_for(args, "cpu", 1, REPO, runs).jobs == runs


def test_user_gives_a_malformed_or_unreachable_ray_address(tmp_path):
    """Ray itself waits forever on an address where nothing answers, and a malformed one was a traceback."""
    grid = ["--seeds", "1,2", "--threads", "1", "--launcher", "ray"]
    done = train(tmp_path, "g", *grid, "--ray-address", "not_an_address")
    assert_one_error_line(done, PROG, "--ray-address 'not_an_address': not an address", "HOST:6379")
    with socket.socket() as free:  # a port of this machine where nothing listens
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    done = train(tmp_path, "g", *grid, "--ray-address", f"127.0.0.1:{port}", "--ray-timeout", "5")
    assert_one_error_line(done, PROG, f"--ray-address 127.0.0.1:{port}: no answer", "within 5 s", "ray start --head")
    done = train(tmp_path, "g", *grid, "--ray-address", "192.0.2.1:6379", "--ray-timeout", "1")  # TEST-NET-1
    assert_one_error_line(done, PROG, "--ray-address 192.0.2.1:6379: no answer", "within 1 s")
    assert not (tmp_path / "g").exists()

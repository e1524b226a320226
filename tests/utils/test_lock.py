"""utils/lock.py: one process at a time holds a folder; a live holder is named, a dead one's lock is taken over."""
import subprocess
import sys

import pytest

from tests.conftest import REPO
from utils.errors import UserError
from utils.lock import LOCK_FILE, FolderLock, holder


def other_process_holds(folder) -> subprocess.Popen:
    code = ("import sys, time; from utils.lock import FolderLock; FolderLock(sys.argv[1], 'run directory').acquire();"
            " print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_live_holder_is_named_and_a_dead_ones_lock_is_taken_over(tmp_path):
    proc = other_process_holds(tmp_path)
    try:
        assert holder(tmp_path) == proc.pid
        with pytest.raises(UserError, match=f"in use by process {proc.pid}.*kill {proc.pid}"):
            FolderLock(tmp_path, "run directory").acquire()
    finally:
        proc.kill()
        proc.wait()
    assert (tmp_path / LOCK_FILE).exists() and holder(tmp_path) is None  # SIGKILL left the file, not the lock
    with FolderLock(tmp_path, "run directory"):
        assert holder(tmp_path) is not None
    assert not (tmp_path / LOCK_FILE).exists() and holder(tmp_path) is None

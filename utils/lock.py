"""A folder in use: one process at a time writes a run directory or a grid folder.

The lock is ``FOLDER/.lock``, a file holding the holder's pid, locked with ``flock``. The kernel drops the lock when
its holder dies (even by SIGKILL), so a lock left by a dead process is taken over by the next one; the pid is only
there to name the holder in the error. The file is removed when the lock is released.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from utils.errors import UserError

LOCK_FILE = ".lock"


class FolderLock:
    """``with FolderLock(folder, what):`` holds ``folder`` for this process, or raises UserError naming the pid
    of the process that holds it. ``what`` names the folder in that error ("run directory", "grid folder")."""

    def __init__(self, folder: str | Path, what: str):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                pid = holder(self.folder)
                raise UserError(f"{self.folder}: this {self.what} is in use by process {pid or '(unknown)'}; wait "
                                f"for it to end or stop it (kill {pid or 'PID'}), then run the command again; two "
                                "processes never write one folder") from None
            # A holder that released between our open and our flock removed the file we opened: lock the new one.
            if _same_file(fd, self.path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def holder(folder: str | Path) -> int | None:
    """The pid of the live process that holds ``folder``'s lock (0 while it is being taken), or None (no lock, or
    a dead holder's)."""
    path = Path(folder) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else 0  # held, its pid not written yet
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

"""File output, in one place: every file the repo writes goes through ``atomic_open``.

A write goes to a temporary file in the target's folder, is flushed and fsynced, then renamed over the target and
the folder fsynced. A crash, a kill or a full disk at any moment leaves the old file or the new one, never a torn
one; on failure the temporary file is removed, so nothing is left behind either.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import yaml

from utils.errors import UserError


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb"):
    """Open ``path`` for writing (``"wb"`` or ``"w"``); the file appears under its name only if the block succeeds."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open writes whole files: mode 'wb' or 'w', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if exc.filename is None:  # a failed write() names no file: name the one the user will look for
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (the directory entry), not only the file's bytes."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files ``atomic_open`` left in ``folder`` when its writer was killed (SIGKILL, power
    loss): ``.NAME.XXXXXXXX.tmp`` beside a file NAME. Call it only while holding the folder (utils/lock.py), so no
    live writer's file is taken. Returns what was removed."""
    stale = [p for p in Path(folder).glob(".*.tmp") if p.is_file() and _is_temporary(p.name)]
    for path in stale:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    return stale


def _is_temporary(name: str) -> bool:
    """``.last.pt.k2j4_x9q.tmp``: a leading dot, a target name, mkstemp's 8 characters, ``.tmp``."""
    stem = name[1:-len(".tmp")]
    target, _, random = stem.rpartition(".")
    return bool(target) and len(random) == 8


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    with atomic_open(path, "w") as f:
        f.write(text)


def write_json(path: str | Path, obj) -> None:
    """Pretty-printed JSON with a final newline."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def write_yaml(path: str | Path, obj) -> None:
    """YAML in insertion order (``safe_dump``: plain types only)."""
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def claim_output_dir(path: str | Path, tool: str, inputs=()) -> Path:
    """Create or reuse an output folder for ``tool``: a new or empty folder, or one ``tool`` filled before (it holds
    the tool's marker file). Outputs never land on inputs and nothing a user made is overwritten, so the folder may
    not be one of ``inputs`` (files or folders) nor hold one, and an unknown non-empty folder is refused.
    """
    path = Path(path)
    marker = path / f".{tool}-output"
    for item in map(Path, inputs):
        if path.resolve() == (item.resolve() if item.is_dir() else item.resolve().parent):
            raise UserError(f"{path}: the output folder would overwrite the input {item}; choose another --out")
    if path.exists() and any(path.iterdir()) and not marker.exists():
        raise UserError(f"{path}: folder exists and holds files {tool} did not write; choose a new or empty --out "
                        "(nothing a user made is overwritten)")
    path.mkdir(parents=True, exist_ok=True)
    write_text(marker, f"written by {tool}; its files here may be replaced by the next {tool} run\n")
    return path

"""sha256 of files, remembered by (absolute path, size, mtime_ns), so that an unchanged dataset is read only once.

The cache is one JSON file, ``{absolute path: [size, mtime_ns, sha256]}``, kept outside any data folder (a data
folder may be read-only, and is the user's). It is a convenience, never a source of truth: an unreadable cache is
treated as empty (with a warning) and an unwritable one only costs the next run the hashing again. A file whose
mtime is within ``RACY_SECONDS`` of the moment it was hashed is not remembered: a second write in the same clock tick
could leave size and mtime unchanged (the "racily clean" case git guards against the same way).
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

from utils.io import write_text

LOG = logging.getLogger(__name__)
RACY_SECONDS = 2.0


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (a 1 MB PNG or a 6 GB archive alike)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


class FileHashCache:
    """``sha256(path)`` with the cache at ``cache_path`` (None: no cache, every file is read)."""

    def __init__(self, cache_path: str | Path | None):
        self.path = Path(cache_path) if cache_path else None
        self.entries = self._load()
        self.dirty = False
        self.hits = self.misses = 0

    def _load(self) -> dict:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            entries = json.loads(self.path.read_text())
            return entries if isinstance(entries, dict) else {}
        except (OSError, ValueError) as exc:
            LOG.warning("%s: unreadable file-hash cache, hashing every file again (%s)", self.path, exc)
            return {}

    def sha256(self, path: str | Path) -> tuple[str, int]:
        """(hex sha256, size in bytes) of a file: from the cache when its size and mtime are the remembered ones."""
        key = os.path.abspath(path)
        st = os.stat(key)
        cached = self.entries.get(key)
        if isinstance(cached, list) and cached[:2] == [st.st_size, st.st_mtime_ns]:
            self.hits += 1
            return cached[2], st.st_size
        self.misses += 1
        digest = sha256_file(key)
        if self.path is not None and time.time_ns() - st.st_mtime_ns > RACY_SECONDS * 1e9:
            self.entries[key] = [st.st_size, st.st_mtime_ns, digest]
            self.dirty = True
        return digest, st.st_size

    def save(self) -> None:
        """Write the cache back (merged with what another process wrote meanwhile; entries of files that no longer
        exist dropped). A failure is a warning: the hashes were right, only the next run pays again."""
        if self.path is None or not self.dirty:
            return
        merged = {**self._load(), **self.entries}
        merged = {k: v for k, v in merged.items() if os.path.exists(k)}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text(self.path, json.dumps(merged, separators=(",", ":")))
        except OSError as exc:
            LOG.warning("%s: cannot write the file-hash cache (%s); the next run hashes the files again",
                        self.path, exc)
            return
        self.entries, self.dirty = merged, False

"""The data's identity: which bytes a run read, as a manifest and one sha256 over it.

The manifest lists, one row each (``path``, ``sha256``, ``size`` in bytes; a header line first, tab-separated): the
split lists of the run in the order given (train, then val), then every image and label file they name, sorted by
path, each once. Paths are relative to the data root (a split list given as a path outside it keeps that path), so
the same bytes under another folder have the same identity. ``data_sha256`` is the sha256 of the manifest's text:
it changes with any byte of any file read, a frame added to or removed from a split, or the order of a split list.
Two manifests name their first differing file (``first_difference``), which is how a changed label is reported.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from utils.errors import UserError
from utils.file_hashes import FileHashCache
from utils.io import write_text

MANIFEST = "data_manifest.tsv"
HEADER = ("path", "sha256", "size")


@dataclass(frozen=True)
class DataIdentity:
    """rows: ``(path, sha256 hex, size)`` in manifest order; sha256: hex digest of ``manifest_text(rows)``."""

    rows: tuple[tuple[str, str, int], ...]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(manifest_text(self.rows).encode()).hexdigest()


def dataset_files(*datasets) -> list[Path]:
    """The files KittiDatasets read: each one's split list (in the order given), then their frames' images and labels,
    sorted and without repeats (a frame in two splits counts once)."""
    lists = list(dict.fromkeys(d.split_file for d in datasets))
    frames = {p for d in datasets for i in range(len(d)) for p in (d.image_path(i), d.label_path(i))}
    return lists + sorted(frames)


def identify(root: str | Path, files: list[Path], cache: FileHashCache) -> DataIdentity:
    """The identity of ``files`` (see ``dataset_files``) under the data root ``root``; the cache is saved after."""
    root = Path(root)
    rows = []
    for path in files:
        digest, size = cache.sha256(path)
        rows.append((_relative(Path(path), root), digest, size))
    cache.save()
    return DataIdentity(tuple(rows))


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def manifest_text(rows) -> str:
    return "".join("\t".join(map(str, row)) + "\n" for row in (HEADER, *rows))


def write_manifest(path: str | Path, identity: DataIdentity) -> None:
    write_text(path, manifest_text(identity.rows))


def read_manifest(path: str | Path) -> tuple[tuple[str, str, int], ...]:
    """The rows of a manifest written by ``write_manifest``; a damaged line is an error naming it."""
    lines = Path(path).read_text().splitlines()
    if not lines or tuple(lines[0].split("\t")) != HEADER:
        raise UserError(f"{path}:1: not a data manifest (expected the header {' '.join(HEADER)})")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3 or len(fields[1]) != 64 or not fields[2].isdigit():
            raise UserError(f"{path}:{number}: expected path<TAB>sha256<TAB>size, got {line!r}")
        rows.append((fields[0], fields[1], int(fields[2])))
    return tuple(rows)


def first_difference(a, b, a_name: str = "before", b_name: str = "now") -> str | None:
    """The first file (in manifest order) whose bytes differ between manifests ``a`` and ``b``, or that only one of
    them lists, as one phrase; None when the manifests are the same."""
    rows_a, rows_b = {r[0]: r[1:] for r in a}, {r[0]: r[1:] for r in b}
    for path in dict.fromkeys([r[0] for r in a] + [r[0] for r in b]):
        if path not in rows_b or path not in rows_a:
            return f"{path} is read {a_name if path in rows_a else b_name} only"
        (sha_a, size_a), (sha_b, size_b) = rows_a[path], rows_b[path]
        if (sha_a, size_a) != (sha_b, size_b):
            return (f"{path} differs: sha256 {sha_a[:12]}... ({size_a} bytes) {a_name}, "
                    f"{sha_b[:12]}... ({size_b} bytes) {b_name}")
    if tuple(a) != tuple(b):
        return "the same files, read in another order (split lists swapped)"
    return None

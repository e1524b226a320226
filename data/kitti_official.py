"""The official KITTI object training set, as facts carried in the repo, and the check of a folder against them.

- ``kitti_training_sha256.tsv`` (beside this file; columns path, sha256, size in bytes): every file of the official
  training set, 7,481 ``training/image_2/NNNNNN.png`` and 7,481 ``training/label_2/NNNNNN.txt``. The table itself
  is pinned by ``TABLE_SHA256``: an edited or damaged table is refused rather than trusted.
- ``splits/3dop_train.txt`` and ``splits/3dop_val.txt``: the 3DOP split (Chen et al., NIPS 2015; also MV3D's),
  3,712 and 3,769 ids, disjoint, 7,481 together.

A file is *changed* (its sha256 differs at the official size), *truncated* (shorter than the official file, what an
interrupted copy leaves) or *foreign* (not a file of the official training set at that path).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from data.kitti import read_split_lines
from data.kitti_labels import KittiFormatError
from utils.errors import UserError
from utils.file_hashes import sha256_file

HERE = Path(__file__).resolve().parent
TABLE = HERE / "kitti_training_sha256.tsv"
TABLE_SHA256 = "8e87bc9ff123a8cf54c1e8ff4dcece69d1485084f994721d0efbc07d7b79de78"
SPLITS = {"train": HERE / "splits" / "3dop_train.txt", "val": HERE / "splits" / "3dop_val.txt"}
FRAMES = 7481
KINDS = {"image_2": ".png", "label_2": ".txt"}  # the folders of training/ this repo reads, and their suffixes


def read_table(path: str | Path = TABLE, expected_sha256: str | None = TABLE_SHA256) -> dict[str, tuple[str, int]]:
    """``{"training/image_2/000000.png": (sha256 hex, size), ...}``; a table whose own sha256 is not
    ``expected_sha256`` (None: not checked), or a malformed line, is an error naming the file (and line)."""
    path = Path(path)
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if expected_sha256 and actual != expected_sha256:
        raise UserError(f"{path}: the official sha256 table does not match its recorded sha256 ({actual[:12]}... "
                        f"instead of {expected_sha256[:12]}...): it was edited or damaged; restore it from the "
                        "repository (git checkout -- data/kitti_training_sha256.tsv)")
    lines = data.decode(errors="replace").splitlines()
    if not lines or lines[0].split("\t") != ["path", "sha256", "size"]:
        raise UserError(f"{path}:1: expected the header path<TAB>sha256<TAB>size")
    table = {}
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split("\t")
        if len(fields) != 3 or len(fields[1]) != 64 or not fields[2].isdigit():
            raise UserError(f"{path}:{number}: expected path<TAB>sha256<TAB>size, got {line!r}")
        table[fields[0]] = (fields[1], int(fields[2]))
    return table


def read_3dop(split: str) -> list[str]:
    """The ids of the 3DOP ``train`` or ``val`` list, in file order."""
    return [frame_id for frame_id, _ in read_split_lines(HERE, str(SPLITS[split]))]


def problem(rel: str, sha256: str, size: int, table: dict) -> str | None:
    """Why the file at ``rel`` (path relative to the KITTI root) with these bytes is not the official one, or None."""
    if rel not in table:
        return "foreign: not a file of the official KITTI training set"
    official, official_size = table[rel]
    if size < official_size:
        return f"truncated: {size} of the official {official_size} bytes"
    if (sha256, size) != (official, official_size):
        return f"changed: sha256 {sha256[:12]}... ({size} bytes), official {official[:12]}... ({official_size} bytes)"
    return None


def root_files(root: Path) -> list[Path]:
    """Every file under ``root``/training/{image_2,label_2}, sorted; a root with neither folder is an error."""
    folders = [root / "training" / kind for kind in KINDS if (root / "training" / kind).is_dir()]
    if not folders:
        raise UserError(f"{root}: not a KITTI root (no training/image_2 or training/label_2 folder); build one with "
                        "python -m data.prepare_kitti --images ZIP --labels ZIP --out ROOT")
    return sorted(p for folder in folders for p in folder.rglob("*") if p.is_file())


def verify_root(root: str | Path, table: dict, log=print) -> list[str]:
    """Check every file of a KITTI root against the table (read afresh, no cache) and every id of its
    ImageSets/*.txt against the frames present. Returns one ``PATH: what`` line per problem; logs a summary."""
    root = Path(root)
    files, problems = root_files(root), []
    for path in files:
        rel = path.relative_to(root).as_posix()
        why = problem(rel, sha256_file(path), path.stat().st_size, table)
        if why:
            problems.append(f"{path}: {why}")
    problems += split_problems(root)
    images = sum(p.parent.name == "image_2" for p in files)
    log(f"{root}: {images} images and {len(files) - images} labels checked against the official sha256 table "
        f"({len(problems)} problem(s))")
    return problems


def split_problems(root: Path) -> list[str]:
    """``SPLIT:LINE: ...`` for each id of ROOT/ImageSets/*.txt whose image or label is missing."""
    problems = []
    for split in sorted((root / "ImageSets").glob("*.txt")):
        try:
            entries = read_split_lines(root, str(split))
        except KittiFormatError as exc:
            problems.append(str(exc))
            continue
        for frame_id, lineno in entries:
            missing = [f"training/{kind}/{frame_id}{suffix}" for kind, suffix in KINDS.items()
                       if not (root / "training" / kind / f"{frame_id}{suffix}").is_file()]
            if missing:
                problems.append(f"{split}:{lineno}: frame {frame_id} is listed but {' and '.join(missing)} "
                                f"{'is' if len(missing) == 1 else 'are'} missing")
    return problems

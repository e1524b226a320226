"""Build the KITTI root that ``--data`` reads from the official downloads, or verify one.

    python -m data.prepare_kitti --images data_object_image_2.zip --labels data_object_label_2.zip --out ROOT
    python -m data.prepare_kitti --verify ROOT

--images and --labels take the zips as the KITTI site ships them, or their extracted folders (holding
training/image_2 or image_2, training/label_2 or label_2). Only the training files are extracted (the test set has
no labels; its images are skipped and counted). Every file is checked against the official sha256 table carried in
the repo (data/kitti_training_sha256.tsv) before it is written, so ROOT holds official bytes only. ImageSets/train.txt
and val.txt are the 3DOP lists (data/splits/) restricted to the frames present. --out must be new or empty, or a
folder this tool wrote before (it holds .prepare_kitti-output): running the same command again after a failure
resumes, keeping the files that already match. --verify exits 0 when every file matches and 1 naming each changed,
truncated or foreign file and each listed frame that is missing.
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys
import zipfile
import zlib
from pathlib import Path

from data.kitti_official import FRAMES, KINDS, problem, read_3dop, read_table, verify_root
from utils.errors import UserError, run_cli
from utils.io import claim_output_dir, write_bytes, write_text

TOOL = "prepare_kitti"
ZIP_NAMES = {"image_2": "data_object_image_2.zip", "label_2": "data_object_label_2.zip"}
MEMBER = re.compile(r"(?:^|/)(training|testing)/(image_2|label_2)/(.+)$")
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError)


class Source:
    """The training files of one --images or --labels input: ``entries`` = [(path relative to the KITTI root,
    handle)], read with ``read(handle)``; ``testing``: test-set files skipped; ``other``: members ignored;
    ``base``: the folder the files are read from (None for a zip)."""

    def __init__(self, path: str | Path, kind: str):
        self.path, self.kind, self.zip, self.base = Path(path), kind, None, None
        self.entries, self.testing, self.other = [], 0, 0
        if self.path.is_dir():
            self._scan_folder()
        elif self.path.is_file():
            self._scan_zip()
        else:
            raise UserError(f"{self.path}: no such file or folder (give {ZIP_NAMES[kind]} or its extracted folder)")
        if not self.entries:
            raise UserError(f"{self.path}: holds no training/{kind}/ files: not the layout of KITTI's "
                            f"{ZIP_NAMES[kind]} (training/{kind}/NNNNNN{KINDS[kind]}); give that zip or the folder "
                            "it extracts to")

    def _scan_zip(self) -> None:
        try:
            self.zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as exc:
            raise UserError(f"{self.path}: not a readable zip ({exc}): a partial or corrupt download? download it "
                            "again") from None
        for info in self.zip.infolist():
            if info.is_dir():
                continue
            match = MEMBER.search(info.filename)
            if match and match.group(1, 2) == ("training", self.kind):
                self.entries.append((f"training/{self.kind}/{match[3]}", info))
            elif match and match[1] == "testing":
                self.testing += 1
            else:
                self.other += 1

    def _scan_folder(self) -> None:
        self.base = next((b for b in (self.path / "training" / self.kind, self.path / self.kind) if b.is_dir()), None)
        if self.base is None:
            return
        self.entries = [(f"training/{self.kind}/{p.relative_to(self.base).as_posix()}", p)
                        for p in sorted(self.base.rglob("*")) if p.is_file()]
        testing = self.path / "testing" / self.kind
        self.testing = sum(p.is_file() for p in testing.rglob("*")) if testing.is_dir() else 0

    def read(self, handle) -> bytes:
        if self.zip is None:
            return handle.read_bytes()
        try:
            return self.zip.read(handle)
        except READ_ERRORS as exc:
            raise UserError(f"{self.path}: {handle.filename} cannot be read ({exc}): a partial or corrupt download? "
                            "download it again; run the same command again to resume") from None


def _check_out(out: Path, sources: list[Source]) -> None:
    """Outputs never land on inputs: --out may not be an input, nor lie inside a folder of files read."""
    for source in sources:
        inside = source.base is not None and out.resolve().is_relative_to(source.base.resolve())
        if out.resolve() == source.path.resolve() or inside:
            raise UserError(f"--out {out}: lies on the input {source.base if inside else source.path}; choose a "
                            "new folder elsewhere")


def extract(source: Source, root: Path, table: dict, log=print) -> list[str]:
    """Write every training file of ``source`` that matches the table into ``root`` (a file already there with the
    official bytes is kept); returns ``SOURCE: PATH: why`` for each file that does not match (not written)."""
    problems, written, kept = [], 0, 0
    for n, (rel, handle) in enumerate(source.entries, start=1):
        target = root / rel
        if _official(target, rel, table):  # written by an earlier, interrupted run
            kept += 1
            continue
        data = source.read(handle)
        why = problem(rel, _sha256(data), len(data), table)
        if why:
            problems.append(f"{source.path}: {rel}: {why}")
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes(target, data)
        written += 1
        if n % 1000 == 0:
            log(f"{source.path.name}: {n} of {len(source.entries)} files")
    log(f"{source.path}: {written} training/{source.kind} files written, {kept} already there"
        + (f"; {source.testing} testing/ files skipped (the test set has no labels)" if source.testing else "")
        + (f"; {source.other} other files ignored (not under training/{source.kind})" if source.other else ""))
    return problems


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _official(path: Path, rel: str, table: dict) -> bool:
    """Does ``path`` exist with the official bytes of ``rel``? (The size first: a cheap no for most others.)"""
    if rel not in table or not path.is_file() or path.stat().st_size != table[rel][1]:
        return False
    return _sha256(path.read_bytes()) == table[rel][0]


def write_splits(root: Path, log=print) -> None:
    """ImageSets/{train,val}.txt: the 3DOP lists restricted to the frames with both image and label in ``root``."""
    ids = {kind: {p.stem for p in (root / "training" / kind).glob(f"*{suffix}")} for kind, suffix in KINDS.items()}
    frames = ids["image_2"] & ids["label_2"]
    (root / "ImageSets").mkdir(exist_ok=True)
    counts = []
    for split in ("train", "val"):
        full = read_3dop(split)
        kept = [i for i in full if i in frames]
        write_text(root / "ImageSets" / f"{split}.txt", "".join(f"{i}\n" for i in kept))
        counts.append(f"ImageSets/{split}.txt lists {len(kept)} of the {len(full):,} 3DOP {split} ids")
    unpaired = len(ids["image_2"] ^ ids["label_2"])
    log(f"{root}: {len(frames):,} of the {FRAMES:,} KITTI training frames present; {'; '.join(counts)}"
        + (f"; {unpaired} frames with an image or a label alone are not listed" if unpaired else ""))


def prepare(images: str, labels: str, out: str, log=print) -> None:
    table = read_table()
    sources = [Source(images, "image_2"), Source(labels, "label_2")]
    _check_out(Path(out), sources)
    root = claim_output_dir(out, TOOL, inputs=[s.path for s in sources])
    problems = [line for source in sources for line in extract(source, root, table, log)]
    for line in problems:
        log(line)
    if problems:
        raise UserError(f"{problems[0]}{f' (and {len(problems) - 1} more, listed above)' if len(problems) > 1 else ''}"
                        f": not written to {root}; download the zip again and run the same command (files that "
                        "matched are kept)")
    write_splits(root, log)
    log(f"{root}: ready; train with --data {root}")


def verify(root: str, log=print) -> None:
    problems = verify_root(root, read_table(), log)
    for line in problems:
        log(line)
    if problems:
        raise UserError(f"{root}: {len(problems)} file(s) or split entries do not match the official KITTI training "
                        "set (listed above); restore them with python -m data.prepare_kitti from the official zips")
    log(f"{root}: ok, every file matches the official sha256 table")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", help="data_object_image_2.zip, or the folder it extracts to")
    parser.add_argument("--labels", help="data_object_label_2.zip, or the folder it extracts to")
    parser.add_argument("--out", help="the KITTI root to build: a new or empty folder (or this tool's own, resumed)")
    parser.add_argument("--verify", metavar="ROOT", help="check a KITTI root against the official sha256 table")
    return parser


def main(args: argparse.Namespace) -> None:
    building = [f for f in ("images", "labels", "out") if getattr(args, f)]
    if args.verify:
        if building:
            raise UserError(f"--verify checks a root; it takes no --{', --'.join(building)}")
        verify(args.verify)
    elif len(building) != 3:
        raise UserError("give --images ZIP_OR_FOLDER --labels ZIP_OR_FOLDER --out ROOT, or --verify ROOT")
    else:
        prepare(args.images, args.labels, args.out)


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "data.prepare_kitti"))

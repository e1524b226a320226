"""The data's identity: the manifest of a split's files, its sha256, and the first differing file of two."""
import shutil

import pytest

from data.identity import (
    MANIFEST,
    DataIdentity,
    dataset_files,
    first_difference,
    identify,
    read_manifest,
    write_manifest,
)
from data.kitti import KittiDataset
from data.synthetic import generate
from utils.file_hashes import FileHashCache


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    path = tmp_path_factory.mktemp("syn") / "d"
    generate(path, 6, seed=0)
    return path


def _identity(root, cache=None):
    train, val = KittiDataset(root, "train"), KittiDataset(root, "val")
    return identify(root, dataset_files(train, val), FileHashCache(cache))


def test_manifest_lists_split_lists_then_sorted_frames_relative_to_the_root(root):
    ident = _identity(root)
    paths = [r[0] for r in ident.rows]
    assert paths[:2] == ["ImageSets/train.txt", "ImageSets/val.txt"]
    assert paths[2:] == sorted(paths[2:]) and len(paths) == 2 + 2 * 6
    assert all(not p.startswith("/") for p in paths)


def test_the_same_bytes_elsewhere_have_the_same_identity(root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    assert _identity(copy).sha256 == _identity(root).sha256


def test_a_changed_label_changes_the_identity_and_is_named(root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    label = sorted((copy / "training" / "label_2").iterdir())[-1]
    label.write_text(label.read_text() + "DontCare -1 -1 -10 1 1 2 2 -1 -1 -1 -1000 -1000 -1000 -10\n")
    before, after = _identity(root), _identity(copy)
    assert before.sha256 != after.sha256
    message = first_difference(before.rows, after.rows, "run a", "run b")
    assert message.startswith(f"training/label_2/{label.name} differs: sha256 ") and "run b" in message


def test_a_reordered_split_list_changes_the_identity(root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    split = copy / "ImageSets" / "train.txt"
    split.write_text("\n".join(reversed(split.read_text().split())) + "\n")
    message = first_difference(_identity(root).rows, _identity(copy).rows)
    assert message.startswith("ImageSets/train.txt differs")


def test_first_difference_names_a_file_only_one_side_reads():
    a = (("x.txt", "0" * 64, 1), ("y.txt", "1" * 64, 2))
    assert first_difference(a, a[:1], "a", "b") == "y.txt is read a only"
    assert first_difference(a[:1], a, "a", "b") == "y.txt is read b only"
    assert first_difference(a, a) is None


def test_manifest_round_trip_and_a_damaged_line_is_named(root, tmp_path):
    ident = _identity(root)
    write_manifest(tmp_path / MANIFEST, ident)
    assert DataIdentity(read_manifest(tmp_path / MANIFEST)) == ident
    lines = (tmp_path / MANIFEST).read_text().splitlines()
    (tmp_path / MANIFEST).write_text("\n".join(lines[:3] + ["broken"] + lines[4:]) + "\n")
    with pytest.raises(ValueError, match=rf"{MANIFEST}:4: expected path<TAB>sha256<TAB>size"):
        read_manifest(tmp_path / MANIFEST)

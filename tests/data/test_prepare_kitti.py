"""python -m data.prepare_kitti on zips and folders built from real KITTI frames (../shared/kitti_mini), and the
official facts it carries: the sha256 table and the 3DOP split. Each CLI call is a separate process."""
import shutil
import zipfile

import pytest

from data.kitti import KittiDataset
from data.kitti_official import FRAMES, TABLE, read_3dop, read_table
from tests.conftest import run_python, shared_path
from tests.faults.conftest import assert_one_error_line, tree

PROG = "data.prepare_kitti"
FRAME_IDS = ("000000", "000001", "000003", "000004")  # 3DOP: 000000 and 000003 in train, 000001 and 000004 in val


def prepare(*args: str):
    return run_python("-m", PROG, *map(str, args), check=False)


def _zip(path, members: dict, method=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", method) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


@pytest.fixture
def zips(tmp_path):
    """(images zip, labels zip) laid out as KITTI ships them, with FRAME_IDS and one test image."""
    mini = shared_path("kitti_mini", "training")
    images = {f"training/image_2/{i}.png": (mini / "image_2" / f"{i}.png").read_bytes() for i in FRAME_IDS}
    images["testing/image_2/000000.png"] = images["training/image_2/000000.png"]
    labels = {f"training/label_2/{i}.txt": (mini / "label_2" / f"{i}.txt").read_bytes() for i in FRAME_IDS}
    return (_zip(tmp_path / "data_object_image_2.zip", images), _zip(tmp_path / "data_object_label_2.zip", labels))


@pytest.fixture
def root(tmp_path, zips):
    done = prepare("--images", zips[0], "--labels", zips[1], "--out", tmp_path / "kitti")
    assert done.returncode == 0, done.stderr
    return tmp_path / "kitti"


def test_prepare_builds_the_root_the_loader_reads_and_verify_passes(root):
    assert (root / "ImageSets" / "train.txt").read_text() == "000000\n000003\n"
    assert (root / "ImageSets" / "val.txt").read_text() == "000001\n000004\n"
    assert not (root / "testing").exists()
    assert KittiDataset(root, "train").ids == ["000000", "000003"] and len(KittiDataset(root, "val")) == 2
    done = prepare("--verify", root)
    assert done.returncode == 0 and "ok, every file matches the official sha256 table" in done.stdout


def test_prepare_says_what_it_kept_and_skipped(tmp_path, zips):
    out = prepare("--images", zips[0], "--labels", zips[1], "--out", tmp_path / "k").stdout
    assert "1 testing/ files skipped (the test set has no labels)" in out
    assert f"4 of the {FRAMES:,} KITTI training frames present" in out
    assert "train.txt lists 2 of the 3,712 3DOP train ids" in out and "val.txt lists 2 of the 3,769" in out


def test_extracted_folders_give_the_same_root(tmp_path, zips, root):
    for z, folder in zip(zips, ("img", "lab")):
        zipfile.ZipFile(z).extractall(tmp_path / folder)
    shutil.move(tmp_path / "lab" / "training" / "label_2", tmp_path / "label_2")  # a bare label_2 folder works too
    done = prepare("--images", tmp_path / "img", "--labels", tmp_path, "--out", tmp_path / "from_folders")
    assert done.returncode == 0, done.stderr
    assert tree(tmp_path / "from_folders") == tree(root)


def test_verify_names_each_changed_truncated_and_foreign_file_and_each_missing_frame(root):
    image, label = root / "training" / "image_2" / "000001.png", root / "training" / "label_2" / "000003.txt"
    data = bytearray(image.read_bytes())
    data[5000] ^= 1
    image.write_bytes(bytes(data))
    label.write_bytes(label.read_bytes()[:20])
    (root / "training" / "label_2" / "notes.txt").write_text("mine\n")
    with open(root / "ImageSets" / "val.txt", "a") as f:
        f.write("000042\n")
    done = prepare("--verify", root)
    assert_one_error_line(done, PROG, str(root), "4 file(s) or split entries do not match")
    assert f"{image}: changed: sha256 " in done.stdout
    assert f"{label}: truncated: 20 of the official " in done.stdout
    assert f"{root / 'training' / 'label_2' / 'notes.txt'}: foreign" in done.stdout
    assert f"{root / 'ImageSets' / 'val.txt'}:3: frame 000042 is listed but training/image_2/000042.png" in done.stdout


def test_a_truncated_zip_is_one_error_line_and_nothing_is_made(tmp_path, zips):
    cut = tmp_path / "cut.zip"
    cut.write_bytes(zips[0].read_bytes()[: zips[0].stat().st_size // 2])
    done = prepare("--images", cut, "--labels", zips[1], "--out", tmp_path / "k")
    assert_one_error_line(done, PROG, str(cut), "not a readable zip", "download it again")
    assert not (tmp_path / "k").exists()


def test_a_corrupt_member_is_one_error_line_and_the_same_command_resumes(tmp_path, zips):
    stored = _zip(tmp_path / "stored.zip", {n: zipfile.ZipFile(zips[0]).read(n)
                                           for n in zipfile.ZipFile(zips[0]).namelist()}, zipfile.ZIP_STORED)
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    done = prepare("--images", stored, "--labels", zips[1], "--out", tmp_path / "k")
    assert_one_error_line(done, PROG, str(stored), "cannot be read", "Bad CRC-32")
    assert not (tmp_path / "k" / "ImageSets").exists()  # not a root the loader would read
    done = prepare("--images", zips[0], "--labels", zips[1], "--out", tmp_path / "k")
    assert done.returncode == 0 and "already there" in done.stdout


def test_a_label_that_is_not_kitti_is_refused_and_not_written(tmp_path, zips):
    members = {n: zipfile.ZipFile(zips[1]).read(n) for n in zipfile.ZipFile(zips[1]).namelist()}
    members["training/label_2/000003.txt"] += b"Car 0.00 0 0 1 2 3 4 1 1 1 1 1 1 0\n"
    edited = _zip(tmp_path / "labels.zip", members)
    done = prepare("--images", zips[0], "--labels", edited, "--out", tmp_path / "k")
    assert_one_error_line(done, PROG, f"{edited}: training/label_2/000003.txt: changed")
    assert not (tmp_path / "k" / "training" / "label_2" / "000003.txt").exists()


def test_a_zip_of_another_layout_is_named(tmp_path, zips):
    done = prepare("--images", zips[1], "--labels", zips[1], "--out", tmp_path / "k")
    assert_one_error_line(done, PROG, str(zips[1]), "holds no training/image_2/ files",
                          "data_object_image_2.zip")


def test_out_on_an_input_or_on_a_users_folder_is_refused(tmp_path, zips):
    for out in (tmp_path, zips[0]):
        assert_one_error_line(prepare("--images", zips[0], "--labels", zips[1], "--out", out), PROG, str(out))
    zipfile.ZipFile(zips[0]).extractall(tmp_path / "img")
    inside = tmp_path / "img" / "training" / "image_2" / "new"
    done = prepare("--images", tmp_path / "img", "--labels", zips[1], "--out", inside)
    assert_one_error_line(done, PROG, f"--out {inside}: lies on the input")
    assert not inside.exists()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me\n")
    done = prepare("--images", zips[0], "--labels", zips[1], "--out", mine)
    assert_one_error_line(done, PROG, str(mine), "nothing a user made is overwritten")
    assert tree(mine) == {"notes.txt": b"keep me\n"}


def test_an_edited_sha256_table_is_refused(tmp_path):
    edited = tmp_path / "table.tsv"
    lines = TABLE.read_text().splitlines()
    edited.write_text("\n".join([lines[0], "training/image_2/000000.png\tnot-a-sha256\t5", *lines[2:]]) + "\n")
    with pytest.raises(ValueError, match=rf"{edited}: the official sha256 table does not match"):
        read_table(edited)
    with pytest.raises(ValueError, match=rf"{edited}:2: expected path<TAB>sha256<TAB>size"):
        read_table(edited, expected_sha256=None)


def test_the_carried_facts_are_the_official_training_set():
    table = read_table()
    ids = {p.split("/")[-1].split(".")[0] for p in table}
    train, val = read_3dop("train"), read_3dop("val")
    assert (len(train), len(val), len(table)) == (3712, 3769, 2 * FRAMES)
    assert not set(train) & set(val) and set(train) | set(val) == ids

"""KittiDataset and the label parser: the real sample frames read exactly, and every bad input named by file:line."""
import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from data.kitti import KittiDataset, read_split
from data.kitti_labels import DONTCARE, KittiFormatError, read_label_file

SAMPLE_IDS = [f"{i:06d}" for i in range(6)]
GOOD = "Car 0.00 0 -1.57 10.00 20.00 50.50 60.25 1.5 1.6 3.9 1.0 1.5 20.0 -1.5"
DONTCARE_LINE = "DontCare -1 -1 -10 5.00 6.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10"


def write_split(path: Path, ids) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(ids))  # no trailing newline, as in the 3DOP lists
    return path


def make_frames(root: Path, labels: dict, size=(96, 40)) -> Path:
    """A KITTI layout under root: seeded noise PNGs of ``size`` (W, H), the given label texts, ImageSets/train.txt."""
    rng = np.random.default_rng(0)
    (root / "training" / "image_2").mkdir(parents=True)
    (root / "training" / "label_2").mkdir(parents=True)
    for frame_id, text in labels.items():
        image = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        assert cv2.imwrite(str(root / "training" / "image_2" / f"{frame_id}.png"), image)
        (root / "training" / "label_2" / f"{frame_id}.txt").write_text(text)
    write_split(root / "ImageSets" / "train.txt", labels)
    return root


@pytest.fixture
def sample_dataset(kitti_sample, tmp_path):
    return KittiDataset(kitti_sample, str(write_split(tmp_path / "six.txt", SAMPLE_IDS)))


def test_every_sample_label_line_read_exactly(sample_dataset, kitti_sample):
    dontcare_counts = []
    for i, frame_id in enumerate(SAMPLE_IDS):
        lines = (kitti_sample / "training" / "label_2" / f"{frame_id}.txt").read_text().splitlines()
        rows = [(n, line.split()) for n, line in enumerate(lines, start=1)]
        objects = [(n, f) for n, f in rows if f[0] != DONTCARE]
        dontcare = [f for _, f in rows if f[0] == DONTCARE]
        labels = sample_dataset.labels[i]
        assert labels.names == tuple(f[0] for _, f in objects)
        assert labels.lines.tolist() == [n for n, _ in objects]
        expected = np.array([[float(v) for v in f[1:]] for _, f in objects]).reshape(-1, 14)
        assert np.array_equal(labels.truncated, expected[:, 0])
        assert np.array_equal(labels.occluded, expected[:, 1].astype(np.int64))
        assert np.array_equal(labels.alpha, expected[:, 2])
        assert np.array_equal(labels.boxes, expected[:, 3:7])
        assert np.array_equal(labels.dimensions, expected[:, 7:10])
        assert np.array_equal(labels.location, expected[:, 10:13])
        assert np.array_equal(labels.rotation_y, expected[:, 13])
        assert labels.scores is None
        assert np.array_equal(labels.dontcare, np.array([[float(v) for v in f[4:8]] for f in dontcare]).reshape(-1, 4))
        dontcare_counts.append(len(labels.dontcare))
    assert dontcare_counts == [0, 4, 0, 2, 5, 4]


def test_sample_images_load_as_rgb_at_their_own_size(sample_dataset, kitti_sample):
    sizes = [sample_dataset.load_image(i).shape for i in range(6)]
    assert sizes == [(370, 1224, 3)] + [(375, 1242, 3)] * 5
    image = sample_dataset.load_image(1)
    assert image.dtype == np.uint8
    bgr = cv2.imread(str(kitti_sample / "training" / "image_2" / "000001.png"), cv2.IMREAD_COLOR)
    assert np.array_equal(image, bgr[:, :, ::-1])


def test_split_lists_read_with_last_line_lacking_newline(kitti_sample):
    train, val = read_split(kitti_sample, "train"), read_split(kitti_sample, "val")
    assert (len(train), len(val)) == (3712, 3769)
    assert not set(train) & set(val)
    for name, ids in (("train", train), ("val", val)):
        text = (kitti_sample / "ImageSets" / f"{name}.txt").read_text()
        assert not text.endswith("\n")
        assert ids[-1] == text.splitlines()[-1].strip()
    assert read_split(kitti_sample, str(kitti_sample / "ImageSets" / "val.txt")) == val


def test_classes_subset_keeps_other_kitti_objects_with_index_minus_one(kitti_sample, tmp_path):
    dataset = KittiDataset(kitti_sample, str(write_split(tmp_path / "s.txt", SAMPLE_IDS)), classes=("Car",))
    labels = dataset.labels[1]  # Truck, Car, Cyclist
    assert labels.names == ("Truck", "Car", "Cyclist")
    assert dataset.class_index(labels.names).tolist() == [-1, 0, -1]
    assert dataset.class_index([]).dtype == np.int64


def test_ram_cache_returns_the_same_read_only_frames(kitti_sample, tmp_path):
    split = str(write_split(tmp_path / "s.txt", ["000000", "000003"]))
    cached, plain = KittiDataset(kitti_sample, split, cache="ram"), KittiDataset(kitti_sample, split)
    for i in range(2):
        assert np.array_equal(cached.load_image(i), plain.load_image(i))
    with pytest.raises(ValueError):
        cached.load_image(0)[0, 0, 0] = 1


@pytest.mark.parametrize("kind", ["image", "label"])
def test_missing_file_names_path_and_split_line(tmp_path, kind):
    root = make_frames(tmp_path, {"000001": GOOD, "000002": GOOD})
    missing = root / "training" / (f"{kind}_2") / ("000002.png" if kind == "image" else "000002.txt")
    missing.unlink()
    with pytest.raises(KittiFormatError) as err:
        KittiDataset(root, "train")
    assert str(missing) in str(err.value) and f"{root / 'ImageSets' / 'train.txt'}:2" in str(err.value)


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_png_names_the_file(tmp_path, damage):
    root = make_frames(tmp_path, {"000001": GOOD})
    path = root / "training" / "image_2" / "000001.png"
    data = path.read_bytes()
    path.write_bytes(b"not a png at all" * 8 if damage == "garbage" else data[: len(data) // 2])
    if damage == "garbage":  # no PNG header: the frame size needed to check the labels is unknown at construction
        with pytest.raises(KittiFormatError, match=re.escape(str(path))):
            KittiDataset(root, "train")
    else:  # the header holds the size; the cut shows when the frame is decoded
        with pytest.raises(KittiFormatError, match=re.escape(str(path))):
            KittiDataset(root, "train").load_image(0)
    with pytest.raises(KittiFormatError, match=re.escape(str(path))):
        KittiDataset(root, "train", cache="ram")


BAD_LINES = {
    "14 fields": (" ".join(GOOD.split()[:14]), "expected 15"),
    "non-numeric": (GOOD.replace("0.00", "zero", 1), "must be numbers"),
    "unknown class": (GOOD.replace("Car", "Spaceship"), "unknown class"),
    "right <= left": (GOOD.replace("50.50", "10.00"), "right > left"),
    "bottom <= top": (GOOD.replace("60.25", "19.00"), "bottom > top"),
    "NaN": (GOOD.replace("1.5 1.6", "nan 1.6"), "NaN"),
}


@pytest.mark.parametrize("case", BAD_LINES)
def test_bad_label_line_names_file_and_line(tmp_path, case):
    line, reason = BAD_LINES[case]
    root = make_frames(tmp_path, {"000007": f"{GOOD}\n{DONTCARE_LINE}\n{line}\n"})
    with pytest.raises(KittiFormatError, match=reason) as err:
        KittiDataset(root, "train")
    assert f"{root / 'training' / 'label_2' / '000007.txt'}:3:" in str(err.value)


def test_skip_mode_drops_bad_lines_and_lists_them(tmp_path):
    bad = [line for line, _ in BAD_LINES.values()]
    text = "\n".join([GOOD, bad[0], DONTCARE_LINE, bad[2], GOOD.replace("Car", "Van"), bad[5]])
    root = make_frames(tmp_path, {"000001": text, "000002": f"{bad[3]}\n{GOOD}"})
    dataset = KittiDataset(root, "train", classes=("Car",), bad_labels="skip")
    label_dir = root / "training" / "label_2"
    assert len(dataset.skipped) == 4
    for message, where in zip(dataset.skipped, ["000001.txt:2:", "000001.txt:4:", "000001.txt:6:", "000002.txt:1:"]):
        assert f"{label_dir / where}" in message
    assert dataset.labels[0].names == ("Car", "Van") and dataset.labels[0].lines.tolist() == [1, 5]
    assert len(dataset.labels[0].dontcare) == 1 and dataset.labels[1].names == ("Car",)


def test_repeated_split_id_and_bad_options_raise(tmp_path):
    root = make_frames(tmp_path, {"000001": GOOD})
    write_split(root / "ImageSets" / "dup.txt", ["000001", "000001"])
    with pytest.raises(KittiFormatError, match="dup.txt:2"):
        KittiDataset(root, "dup")
    for kwargs in ({"cache": "disk"}, {"bad_labels": "ignore"}, {"classes": ("Car", DONTCARE)}, {"classes": ()}):
        with pytest.raises(ValueError):
            KittiDataset(root, "train", **kwargs)


def test_read_label_file_result_mode_reads_scores(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("Car -1 -1 -10 1.00 2.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10 0.875\n")
    labels = read_label_file(path, results=True)
    assert labels.scores.tolist() == [0.875] and labels.boxes.tolist() == [[1.0, 2.0, 30.0, 40.0]]


def test_a_stock_dataloader_reads_the_dataset(tmp_path):
    """len(ds) and ds[i] -> (uint8[H, W, 3] RGB image, FrameLabels): torch's own DataLoader, worker processes
    included, yields every frame in order, one at a time or as lists."""
    from torch.utils.data import DataLoader
    texts = {"000000": "Car 0.00 0 0.0 10.00 5.00 40.00 30.00 1 1 1 1 1 10 0\n", "000001": "",
             "000002": "Pedestrian 0.00 0 0.0 1.00 2.00 9.00 20.00 1 1 1 1 1 10 0\n"}
    dataset = KittiDataset(make_frames(tmp_path, texts), "train")
    assert len(dataset) == 3
    image, labels = dataset[2]
    assert image.dtype == np.uint8 and image.shape == (40, 96, 3) and labels.names == ("Pedestrian",)
    assert np.array_equal(labels.boxes, [[1, 2, 9, 20]])
    frames = list(DataLoader(dataset, batch_size=None, num_workers=2))
    assert len(frames) == 3
    for i, (tensor, labels) in enumerate(frames):
        assert np.array_equal(tensor.numpy(), dataset.load_image(i)) and labels.names == dataset.labels[i].names
    batches = list(DataLoader(dataset, batch_size=2, collate_fn=list))
    assert [[labels.names for _, labels in batch] for batch in batches] == [[("Car",), ()], [("Pedestrian",)]]

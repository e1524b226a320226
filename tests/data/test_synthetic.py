"""data/synthetic.py: byte-identical output across processes and thread counts, KITTI-valid labels with plausible
geometry, splits, and the verified cache of ensure_dataset."""
import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from data import synthetic
from data.kitti import read_split
from data.kitti_labels import read_label_file
from data.synthetic_scene import CAM_HEIGHT, FOCAL, SIZES
from tests.conftest import REPO

MAIN_CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Cyclist")
DONTCARE_TAIL = "-1 -1 -1 -1000 -1000 -1000 -10"


def _tree_sha(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root (manifest included)."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _run_cli(out: Path, seed: int, num: int, threads: int) -> None:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENCV_FOR_THREADS_NUM=str(threads))
    proc = subprocess.run([sys.executable, "-m", "data.synthetic", "--out", str(out), "--num", str(num),
                           "--seed", str(seed)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synthetic") / "kitti"
    synthetic.generate(root, num=10, seed=0)
    return root


def _frames(root: Path):
    """(frame id, FrameLabels, image shape) of every frame."""
    for label in sorted((root / "training" / "label_2").glob("*.txt")):
        image = cv2.imread(str(root / "training" / "image_2" / f"{label.stem}.png"), cv2.IMREAD_UNCHANGED)
        yield label.stem, read_label_file(label), image.shape


def test_cli_is_byte_identical_across_processes_and_thread_counts(tmp_path, dataset):
    _run_cli(tmp_path / "a", seed=0, num=6, threads=1)
    _run_cli(tmp_path / "b", seed=0, num=6, threads=4)
    a, b = _tree_sha(tmp_path / "a"), _tree_sha(tmp_path / "b")
    assert len(a) == 6 * 2 + 2 + 1 and a == b
    # frame i depends only on (seed, i): the 10-frame in-process dataset starts with the same 6 frames
    reference = _tree_sha(dataset)
    for name, digest in a.items():
        if name.startswith("training/"):
            assert reference[name] == digest, name


def test_different_seeds_give_different_frames(tmp_path, dataset):
    synthetic.generate(tmp_path / "s1", num=2, seed=1)
    for sub in ("image_2/000000.png", "label_2/000000.txt", "image_2/000001.png"):
        assert (tmp_path / "s1" / "training" / sub).read_bytes() != (dataset / "training" / sub).read_bytes()


def test_labels_parse_and_are_plausible(dataset):
    for frame_id, labels, shape in _frames(dataset):
        height, width = shape[:2]
        assert shape[2] == 3 and (width, height) in SIZES, frame_id
        assert 3 <= len(labels) <= 15, frame_id
        x1, y1, x2, y2 = labels.boxes.T
        assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= width).all() and (y2 <= height).all(), frame_id
        assert (y2 - y1 >= synthetic.MIN_HEIGHT).all(), frame_id
        assert ((labels.truncated >= 0) & (labels.truncated <= synthetic.MAX_TRUNCATION)).all(), frame_id
        assert set(labels.occluded.tolist()) <= {0, 1, 2}, frame_id
        assert (np.abs(labels.alpha) <= math.pi + 0.01).all() and (np.abs(labels.rotation_y) <= math.pi + 0.01).all()
        assert (labels.dimensions > 0).all() and (labels.location[:, 2] > 0).all(), frame_id
        assert np.allclose(labels.location[:, 1], CAM_HEIGHT), frame_id
        # size follows depth: box height ~ height_m * f / z for untruncated objects (jitter and rounding only)
        whole = labels.truncated == 0
        expected = labels.dimensions[whole, 0] * FOCAL / labels.location[whole, 2]
        np.testing.assert_allclose((y2 - y1)[whole], expected, rtol=0.08, atol=2.0, err_msg=frame_id)
        # x from the column: the vanishing point is within 40 px of the frame centre
        centre = width / 2 + FOCAL * labels.location[whole, 0] / labels.location[whole, 2]
        assert (np.abs((x1 + x2)[whole] / 2 - centre) <= 40 + 0.05 * (x2 - x1)[whole] + 2).all(), frame_id
        assert ((labels.dontcare[:, 3] - labels.dontcare[:, 1]) <= synthetic.MIN_HEIGHT + 4).all(), frame_id
    for path in (dataset / "training" / "label_2").glob("*.txt"):
        for line in path.read_text().splitlines():
            if line.startswith("DontCare"):
                assert line.startswith("DontCare -1 -1 -10 ") and line.endswith(DONTCARE_TAIL), line


def test_classes_heights_occlusion_and_truncation_vary(dataset):
    names, heights, occluded, truncated = [], [], [], []
    for _, labels, _ in _frames(dataset):
        names += labels.names
        heights += (labels.boxes[:, 3] - labels.boxes[:, 1]).tolist()
        occluded += labels.occluded.tolist()
        truncated += labels.truncated.tolist()
    assert set(MAIN_CLASSES) <= set(names), sorted(set(names))
    assert names.count("Car") == max(names.count(c) for c in set(names))
    assert min(heights) < 35 and max(heights) > 180 and 40 <= np.median(heights) <= 200, sorted(heights)
    assert {0, 1} <= set(occluded) and max(truncated) > 0


def test_splits_are_disjoint_and_cover_all_frames(dataset):
    train, val = read_split(dataset, "train"), read_split(dataset, "val")
    ids = sorted(p.stem for p in (dataset / "training" / "image_2").glob("*.png"))
    assert ids == [f"{i:06d}" for i in range(10)]
    assert not set(train) & set(val) and sorted(train + val) == ids and len(val) == 5


def test_generate_refuses_a_non_empty_directory(tmp_path):
    (tmp_path / "stale.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        synthetic.generate(tmp_path, num=2, seed=0)


def test_ensure_dataset_reuses_a_valid_cache_and_regenerates_a_damaged_one(tmp_path, monkeypatch):
    root = synthetic.ensure_dataset(tmp_path, num=3, seed=0)
    original = _tree_sha(root)
    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*")}

    def no_generation(*args, **kwargs):
        raise AssertionError("a valid cache was regenerated")
    with monkeypatch.context() as m:
        m.setattr(synthetic, "generate", no_generation)
        assert synthetic.ensure_dataset(tmp_path, num=3, seed=0) == root
    assert {p: p.stat().st_mtime_ns for p in root.rglob("*")} == mtimes

    for damage in (lambda: (root / "training" / "image_2" / "000001.png").unlink(),
                   lambda: (root / "training" / "label_2" / "000002.txt").write_text("Car 0 0 0 1 1 2 2\n"),
                   lambda: (root / synthetic.MANIFEST).unlink()):
        damage()
        assert synthetic.ensure_dataset(tmp_path, num=3, seed=0) == root
        assert _tree_sha(root) == original
    assert [p.name for p in tmp_path.iterdir()] == [root.name]  # no temporary directory left behind

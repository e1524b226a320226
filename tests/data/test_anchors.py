"""data/anchors.py: seeded k-means, letterbox scaling and the CLI."""
import numpy as np
import pytest

from data.anchors import (
    format_anchors,
    get_args_parser,
    kmeans_anchors,
    letterbox_scale,
    main,
    mean_best_iou,
)
from data.kitti import image_size


def clustered_boxes(seed: int = 0) -> np.ndarray:
    """(300, 2): 100 boxes jittered by up to +-5% around each of (10, 10), (50, 20) and (20, 80)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[10.0, 10.0], [50.0, 20.0], [20.0, 80.0]])
    return np.concatenate([c * rng.uniform(0.95, 1.05, size=(100, 2)) for c in centers])


def test_kmeans_recovers_three_obvious_clusters():
    anchors = kmeans_anchors(clustered_boxes(), k=3, seed=0)
    np.testing.assert_allclose(anchors, [[10, 10], [50, 20], [20, 80]], rtol=0.02)  # sorted by area
    assert mean_best_iou(clustered_boxes(), anchors) > 0.9


def test_kmeans_same_seed_same_anchors_any_box_order():
    boxes = np.random.default_rng(1).uniform(5, 200, size=(200, 2))
    first = kmeans_anchors(boxes, k=9, seed=0)
    assert np.array_equal(first, kmeans_anchors(boxes[::-1].copy(), k=9, seed=0))
    areas = first[:, 0] * first[:, 1]
    assert np.all(np.diff(areas) >= 0)
    others = [kmeans_anchors(boxes, k=9, seed=s) for s in range(1, 6)]
    assert any(not np.array_equal(first, other) for other in others)  # the seed drives the initialisation


def test_kmeans_rejects_too_few_shapes():
    with pytest.raises(ValueError, match="2 distinct box shapes cannot make 3 anchors"):
        kmeans_anchors(np.array([[1.0, 2.0], [1.0, 2.0], [3.0, 4.0]]), k=3, seed=0)


def test_letterbox_scale_and_format():
    assert letterbox_scale((1242, 375), (1248, 384)) == 1248 / 1242
    assert letterbox_scale((1242, 375), (416, 416)) == 416 / 1242
    assert format_anchors(np.array([[0.4, 2.5], [10.6, 30.2]])) == "anchors = 1,2,  11,30"


def test_cli_on_kitti_sample(kitti_sample, capsys):
    """The 6 real frames hold 10 non-DontCare boxes; image sizes come from the PNG headers."""
    labels = kitti_sample / "training" / "label_2"
    assert image_size(kitti_sample / "training" / "image_2" / "000000.png") == (1224, 370)
    args = get_args_parser().parse_args(["--labels", str(labels), "--num", "3", "--seed", "0"])
    line = main(args)
    out = capsys.readouterr().out
    assert out.startswith(line + "\n") and "# 10 boxes, k=3, seed=0, input 1248x384: mean best IoU" in out
    assert line == main(args)
    main(get_args_parser().parse_args(["--labels", str(labels), "--num", "2", "--classes", "Car"]))
    assert "# 5 boxes, k=2" in capsys.readouterr().out.splitlines()[-1]
    with pytest.raises(ValueError, match="unknown classes"):
        main(get_args_parser().parse_args(["--labels", str(labels), "--classes", "Car,Bus"]))


def test_cli_on_a_kitti_root_counts_only_the_split(kitti_sample, tmp_path, capsys):
    """--data ROOT --split LIST: frames 000000 and 000003 hold one Pedestrian and one Car (DontCare aside)."""
    split = tmp_path / "two.txt"
    split.write_text("000000\n000003\n")
    main(get_args_parser().parse_args(["--data", str(kitti_sample), "--split", str(split), "--num", "2"]))
    assert "# 2 boxes, k=2" in capsys.readouterr().out

"""utils/boxes.py: hand-computed clipping and IoUs, torch and numpy alike."""
import numpy as np
import pytest
import torch

from utils.boxes import (
    box_iou_batched,
    clip_boxes,
    np_box_overlap,
    np_box_overlap_paired,
    wh_iou,
)


def test_box_iou_batched_known_pairs():
    a = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    b = torch.tensor([[5.0, 0.0, 15.0, 10.0],   # half overlap: 50 / 150
                      [0.0, 0.0, 10.0, 10.0],   # identical
                      [20.0, 20.0, 30.0, 30.0],  # disjoint
                      [2.0, 2.0, 4.0, 4.0],     # inside: 4 / 100
                      [3.0, 3.0, 3.0, 9.0]])    # zero area
    assert box_iou_batched(a[None], b[None])[0, 0].tolist() == pytest.approx([1 / 3, 1.0, 0.0, 0.04, 0.0])


def test_box_iou_batched_keeps_images_apart():
    boxes1 = torch.tensor([[[0.0, 0.0, 2.0, 2.0]], [[0.0, 0.0, 2.0, 2.0]]])
    boxes2 = torch.tensor([[[0.0, 0.0, 2.0, 2.0]], [[1.0, 0.0, 3.0, 2.0]]])
    assert box_iou_batched(boxes1, boxes2).flatten().tolist() == pytest.approx([1.0, 2 / 6])


def test_wh_iou_same_values_for_torch_and_numpy():
    """(4, 6) vs (6, 3) at the origin: intersection 4*3 = 12, union 24 + 18 - 12 = 30, IoU 0.4."""
    wh1, wh2 = [[4.0, 6.0], [2.0, 2.0]], [[6.0, 3.0], [2.0, 2.0]]
    expected = [[0.4, 4 / 24], [4 / 18, 1.0]]
    np.testing.assert_allclose(wh_iou(np.array(wh1), np.array(wh2)), expected)
    np.testing.assert_allclose(wh_iou(torch.tensor(wh1, dtype=torch.float64),
                                      torch.tensor(wh2, dtype=torch.float64)).numpy(), expected)


def test_clip_boxes():
    clipped = clip_boxes(np.array([[-5.0, 2.0, 50.0, 9.0], [1.0, -1.0, 2.0, 40.0]]), 40, 30)
    assert clipped.tolist() == [[0, 2, 40, 9], [1, 0, 2, 30]] and clipped.dtype == np.float64


def test_devkit_overlap_union_and_detection_area():
    det = np.array([[0.0, 0.0, 10.0, 10.0]])
    dontcare = np.array([[5.0, 0.0, 25.0, 10.0]])
    assert np_box_overlap(det, dontcare).tolist() == [[pytest.approx(50 / 250)]]
    assert np_box_overlap(det, dontcare, denominator="first").tolist() == [[0.5]]  # the devkit's DontCare test
    with pytest.raises(ValueError, match="denominator"):
        np_box_overlap(det, dontcare, denominator="second")


def test_paired_overlap_is_bitwise_the_matrix_diagonal():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (20, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 50, (20, 2))], axis=1)
    xy = rng.uniform(0, 100, (20, 2))
    b = np.concatenate([xy, xy + rng.uniform(1, 50, (20, 2))], axis=1)
    for denominator in ("union", "first"):
        assert np.array_equal(np_box_overlap_paired(a, b, denominator),
                              np.diag(np_box_overlap(a, b, denominator)))

"""Deterministic postprocessing: hand-computed NMS, tie-breaking by candidate index, thresholds, and agreement with
a plain greedy NMS written here."""
import pytest
import torch

from evaluation.nms import postprocess


def decoded(boxes, objectness, class_probs):
    """(1, K, 5+C) from K xyxy boxes, K objectness values and (K, C) class probabilities."""
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    obj = torch.tensor(objectness, dtype=torch.float32).reshape(-1, 1)
    return torch.cat([boxes, obj, torch.tensor(class_probs, dtype=torch.float32).reshape(len(boxes), -1)], 1)[None]


def random_decoded(seed, n=2, k=400, c=3):
    """Clustered integer boxes (many overlaps) and scores from a few levels (many ties)."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randint(0, 8, (n, k, 2), generator=g) * 40 + torch.randint(0, 6, (n, k, 2), generator=g)
    size = torch.randint(10, 40, (n, k, 2), generator=g)
    boxes = torch.cat([centre - size // 2, centre + size // 2], -1).float() - 30  # some negative coordinates
    obj = torch.randint(1, 5, (n, k, 1), generator=g).float() / 4
    cls = torch.randint(0, 5, (n, k, c), generator=g).float() / 4
    return torch.cat([boxes, obj, cls], -1)


def reference_nms(image, conf_thres, iou_thres, max_det):
    """Greedy NMS over (box, class) candidates sorted by (score desc, box*C + class asc); IoU in float64."""
    rows = image.double().tolist()
    num_classes = len(rows[0]) - 5
    cands = [(r[4] * r[5 + c], b * num_classes + c) for b, r in enumerate(rows) for c in range(num_classes)
             if float(image[b, 4]) * float(image[b, 5 + c]) > conf_thres]
    kept = []
    for score, idx in sorted(cands, key=lambda t: (-t[0], t[1])):
        box = rows[idx // num_classes][:4]
        if all(i % num_classes != idx % num_classes or iou(box, rows[i // num_classes][:4]) <= iou_thres
               for i in kept):
            kept.append(idx)
    return kept[:max_det]


def iou(a, b):
    inter = max(min(a[2], b[2]) - max(a[0], b[0]), 0) * max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_hand_computed_nms():
    """A (0.9) suppresses B (IoU 81/119 = 0.68); C (IoU 50/150 = 0.33 with A) stays; D, A's box in class 1, stays."""
    boxes = [[0, 0, 10, 10], [1, 1, 11, 11], [5, 0, 15, 10], [0, 0, 10, 10]]
    det = postprocess(decoded(boxes, [0.9, 0.8, 0.7, 0.6], [[1, 0], [1, 0], [1, 0], [0, 1]]), iou_thres=0.45)[0]
    assert det.boxes.tolist() == [boxes[0], boxes[2], boxes[3]]
    assert det.scores.tolist() == pytest.approx([0.9, 0.7, 0.6])
    assert det.classes.tolist() == [0, 0, 1] and det.classes.dtype == torch.int64
    assert det.boxes.dtype == torch.float32 and det.boxes.device.type == "cpu"


@pytest.mark.parametrize("swap", [False, True])
def test_equal_scores_broken_by_index(swap):
    far = [[0, 0, 10, 10], [100, 100, 110, 110]]
    near = [[0, 0, 10, 10], [1, 0, 11, 10]]  # IoU 90/110
    if swap:
        far, near = far[::-1], near[::-1]
    det = postprocess(decoded(far, [0.5, 0.5], [[1.0], [1.0]]))[0]
    assert det.boxes.tolist() == far  # lower index first, wherever it lies
    det = postprocess(decoded(near, [0.5, 0.5], [[1.0], [1.0]]))[0]
    assert det.boxes.tolist() == near[:1]  # lower index kept


def test_conf_threshold_one_candidate_per_class_and_max_det():
    boxes = [[i * 20, 0, i * 20 + 10, 10] for i in range(6)]
    obj = [0.5, 0.5, 0.01, 0.5, 1.0, 0.5]
    probs = [[0.5, 0.9], [0.02, 0.01], [1.0, 1.0], [0.2, 0.0], [0.004, 0.0], [0.01, 0.0]]
    det = postprocess(decoded(boxes, obj, probs), conf_thres=0.005)[0]
    # scores: box0 0.25 & 0.45, box1 0.01 (0.005 is not > 0.005), box2 0.01 & 0.01, box3 0.1, box4 0.004 (out),
    # box5 0.005 (out: not > 0.005).
    assert det.classes.tolist() == [1, 0, 0, 0, 0, 1] and det.scores.tolist() == pytest.approx(
        [0.45, 0.25, 0.1, 0.01, 0.01, 0.01])
    assert det.boxes[:, 0].tolist() == [0, 0, 60, 20, 40, 40]  # ties at 0.01 in candidate-index order
    assert len(postprocess(decoded(boxes, obj, probs), max_det=2)[0]) == 2
    assert (postprocess(decoded(boxes, obj, probs), conf_thres=0.2)[0].scores > 0.2).all()


def test_classes_with_negative_boxes_are_not_merged():
    """torchvision's coordinate-offset trick assumes boxes >= 0; class 1's box at x = -101 must not reach class 0."""
    det = postprocess(decoded([[0, 0, 100, 100], [-101, 0, -1, 100]], [0.9, 0.8], [[1, 0], [0, 1]]))[0]
    assert det.classes.tolist() == [0, 1]


@pytest.mark.parametrize("k", [100, 400])  # <= 1000 candidates: batched_nms's offset trick; more: its per-class loop
def test_repeatable_and_equal_to_plain_greedy_nms(k):
    x = random_decoded(k, k=k)
    first = postprocess(x.clone(), conf_thres=0.05, iou_thres=0.45, max_det=300)
    for _ in range(100):
        again = postprocess(x.clone(), conf_thres=0.05, iou_thres=0.45, max_det=300)
        for a, b in zip(first, again):
            assert all(torch.equal(getattr(a, f), getattr(b, f)) for f in ("boxes", "scores", "classes"))
    for image, det in zip(x, first):
        expected = reference_nms(image, 0.05, 0.45, 300)
        assert len(det) > k // 10 and len(set(det.scores.tolist())) < len(det)  # many kept, with ties
        c = image.shape[1] - 5
        assert det.boxes.tolist() == [image[i // c, :4].tolist() for i in expected]
        assert det.classes.tolist() == [i % c for i in expected]


def test_rejects_non_finite_input():
    x = decoded([[0, 0, 10, 10]], [0.9], [[1.0]])
    x[0, 0, 4] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        postprocess(x)

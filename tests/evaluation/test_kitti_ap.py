"""KITTI 2D AP: hand-computed cases for every devkit rule, the kitti_sample numbers of docs/kitti.md section 6,
and a randomized comparison with a slow loop-by-loop port of evaluate_object.cpp (kitti_ap_reference.py)."""
import json
import math

import numpy as np
import pytest

from data.kitti_labels import FrameLabels, detections_frame, read_label_file
from evaluation.kitti_ap import (
    DIFFICULTIES,
    evaluate_class,
    get_thresholds,
    kitti_ap,
    precision_envelope,
)
from tests.evaluation.kitti_ap_reference import (
    ref_eval_class,
    ref_get_thresholds,
    ref_max_element,
)
from utils.boxes import np_box_overlap

CLASSES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc")


def gt_frame(names, boxes, truncated=None, occluded=None, dontcare=()) -> FrameLabels:
    """Ground truth in memory: K names, (K, 4) xyxy; truncation 0 and occlusion 0 unless given."""
    k = len(names)
    boxes = np.asarray(boxes, np.float64).reshape(k, 4)
    return FrameLabels(names=tuple(names), truncated=np.zeros(k) if truncated is None else np.asarray(truncated, float),
                       occluded=np.zeros(k, np.int64) if occluded is None else np.asarray(occluded, np.int64),
                       alpha=np.zeros(k), boxes=boxes, dimensions=np.ones((k, 3)), location=np.ones((k, 3)),
                       rotation_y=np.zeros(k), scores=None, dontcare=np.asarray(dontcare, np.float64).reshape(-1, 4),
                       lines=np.arange(1, k + 1))


def as_detections(frame: FrameLabels, score=1.0) -> FrameLabels:
    return detections_frame(frame.names, frame.boxes, np.full(len(frame), score))


def grid_boxes(n, height=50.0, width=30.0):
    """n non-overlapping boxes, 20 per row."""
    i = np.arange(n)
    x, y = (i % 20) * (width + 10), (i // 20) * (height + 10)
    return np.stack([x, y, x + width, y + height], 1)


def random_scene(rng, n_frames):
    """GT with varied classes, heights (incl. exactly 25/40 px), truncation, occlusion, DontCare; noisy detections
    with tied scores, tiny boxes, other classes and boxes inside DontCare regions."""
    gt_frames, dt_frames, noise = [], [], rng.uniform(0.02, 0.1)
    for _ in range(n_frames):
        k = rng.integers(0, 16)
        names = list(rng.choice(CLASSES, k, p=[.4, .1, .05, .2, .05, .1, .05, .05]))
        h = np.where(rng.random(k) < 0.3, rng.choice([24.99, 25.0, 25.01, 39.99, 40.0, 40.01], k),
                     rng.uniform(10, 150, k))
        w, x1, y1 = h * rng.uniform(0.4, 2.5, k), rng.uniform(0, 1000, k), rng.uniform(0, 200, k)
        boxes = np.stack([x1, y1, x1 + w, y1 + h], 1)
        dc = rng.uniform(0, 800, (rng.integers(0, 3), 2))
        dc = np.concatenate([dc, dc + rng.uniform(20, 200, dc.shape)], 1)
        gt_frames.append(gt_frame(names, boxes, rng.choice([0.0, 0.15, 0.3, 0.5, 0.7], k), rng.integers(0, 4, k), dc))
        det_names, det_boxes = [], []
        for name, box in zip(names, boxes):
            for _ in range(rng.integers(0, 4)):
                size = box[2:] - box[:2]
                if rng.random() < 0.25:  # same top, shorter: crosses the 25/40 px detection limits at high IoU
                    det_boxes.append(np.r_[box[:3], box[1] + size[1] * rng.uniform(0.7, 1.0)])
                else:
                    det_boxes.append(box + rng.normal(0, noise, 4) * np.r_[size, size])
                det_names.append(name if rng.random() < 0.8 else rng.choice(CLASSES))
        for _ in range(rng.integers(0, 6)):  # random, tiny, or inside a DontCare region
            src = dc[rng.integers(len(dc))] if len(dc) and rng.random() < 0.4 else None
            xy = rng.uniform(0, 1000, 2) if src is None else src[:2] + rng.uniform(0, 10, 2)
            det_boxes.append(np.r_[xy, xy + rng.uniform(5, 80, 2)])
            det_names.append(rng.choice(CLASSES))
        det_boxes = np.array(det_boxes).reshape(-1, 4)
        det_boxes[:, 2:] = np.maximum(det_boxes[:, 2:], det_boxes[:, :2] + 1)
        scores = rng.random(len(det_boxes))
        scores = np.round(scores, 1) if rng.random() < 0.5 else scores  # ties
        dup = rng.random(len(det_boxes)) < 0.15  # exact duplicates: ties in score and in overlap
        det_names += [n for n, d in zip(det_names, dup) if d]
        det_boxes, scores = np.concatenate([det_boxes, det_boxes[dup]]), np.concatenate([scores, scores[dup]])
        dt_frames.append(detections_frame(det_names, det_boxes, scores))
    return gt_frames, dt_frames


@pytest.mark.parametrize("seed", range(20))
def test_matches_slow_reference_on_random_scenes(seed):
    rng = np.random.default_rng(seed)
    gt, dt = random_scene(rng, int(rng.integers(3, 40)))
    ap, curves = kitti_ap(gt, dt, return_curves=True)
    for cls in ap:
        for d, name in enumerate(DIFFICULTIES):
            thresholds, pr, ref11, ref40 = ref_eval_class(cls, gt, dt, d)
            curve = curves[cls][name]
            assert curve.thresholds.tolist() == thresholds, (cls, name)
            assert np.stack([curve.tp, curve.fp, curve.fn], 1).tolist() == pr, (cls, name)
            for got, ref in ((ap[cls]["AP11"][name], ref11), (ap[cls]["AP40"][name], ref40)):
                assert (got is None) == (ref is None), (cls, name)
                assert got is None or got == pytest.approx(ref, abs=0.01, nan_ok=True), (cls, name, got, ref)


# Hand-computed cases, one devkit rule each.
def car_curve(gt, dt, difficulty="moderate", cls="Car"):
    return evaluate_class(gt, dt, cls)[difficulty]


def test_sample_gt_as_detections(kitti_sample):
    """docs/kitti.md section 6: few counted GT, so perfect detections score far below 100; Cyclist has none."""
    gt = [read_label_file(p) for p in sorted((kitti_sample / "training" / "label_2").glob("*.txt"))]
    ap = kitti_ap(gt, [as_detections(f) for f in gt])
    assert [ap["Car"]["AP40"][d] for d in DIFFICULTIES] == pytest.approx([0.0, 5.0, 5.0])
    assert [ap["Car"]["AP11"][d] for d in DIFFICULTIES] == pytest.approx([100 / 11] * 3)
    assert [ap["Pedestrian"]["AP40"][d] for d in DIFFICULTIES] == pytest.approx([2.5] * 3)
    assert [ap["Pedestrian"]["AP11"][d] for d in DIFFICULTIES] == pytest.approx([100 / 11] * 3)
    assert ap["Cyclist"] == {"AP11": dict.fromkeys(DIFFICULTIES), "AP40": dict.fromkeys(DIFFICULTIES)}
    assert json.loads(json.dumps(ap))["Cyclist"]["AP40"]["moderate"] is None


def test_sample_car_on_truck_is_fp_at_moderate_only(kitti_sample):
    """The 000001 Truck is 32.85 px tall: a Car detection on it is ignored at Easy (< 40) and an FP otherwise."""
    labels = kitti_sample / "training" / "label_2"
    gt = [read_label_file(labels / f"{i:06d}.txt") for i in range(6)]
    truck = gt[1].boxes[gt[1].names.index("Truck")]
    assert truck[3] - truck[1] == pytest.approx(32.85)
    dt = [as_detections(f) for f in gt]
    dt[1] = detections_frame(gt[1].names + ("Car",), np.vstack([gt[1].boxes, truck]), np.r_[np.ones(len(gt[1])), 2.0])
    curves = evaluate_class(gt, dt, "Car")
    assert curves["easy"].fp.tolist() == [0]
    assert curves["moderate"].fp.tolist() == curves["hard"].fp.tolist() == [1, 1, 1]
    ap = kitti_ap(gt, dt)["Car"]
    assert ap["AP40"] == pytest.approx({"easy": 0.0, "moderate": 3.75, "hard": 3.75})  # 2 x 0.75 / 40
    assert ap["AP11"] == pytest.approx({"easy": 100 / 11, "moderate": 75 / 11, "hard": 75 / 11})


@pytest.mark.parametrize("dc_box, fp", [([400, 100, 500, 200], 0), ([470, 100, 570, 200], 1),
                                        ([410, 125, 460, 200], 1)])
def test_detection_inside_dontcare_is_not_fp(dc_box, fp):
    """Criterion: intersection / detection area > 0.7 (Car). Inside: 1.0; shifted region: 0.4 -> FP; exactly 0.7
    -> FP."""
    gt = [gt_frame(["Car"], [[100, 100, 200, 180]], dontcare=[dc_box])]
    dt = [detections_frame(["Car", "Car"], [[100, 100, 200, 180], [410, 110, 460, 160]], [0.5, 0.9])]
    assert car_curve(gt, dt).fp.tolist() == [fp]


def test_names_match_case_insensitively():
    """strcasecmp: "car" detections score against "Car"; a GT object named "dontcare" is a DontCare region."""
    gt = [gt_frame(["Car", "dontcare"], [[100, 100, 200, 180], [400, 100, 500, 200]])]
    dt = [detections_frame(["car", "CAR"], [[100, 100, 200, 180], [410, 110, 460, 160]], [0.5, 0.9])]
    curve = car_curve(gt, dt, cls="cAr")
    assert (curve.n_gt, curve.tp.tolist(), curve.fp.tolist()) == (1, [1], [0])


@pytest.mark.parametrize("with_truck_det, fp", [(False, 0), (True, 1)])
def test_neighbour_class_absorbs_detection_other_class_does_not(with_truck_det, fp):
    """A Car detection on a Van is not an FP; on a Truck it is. Person_sitting plays the Van's part for Pedestrian."""
    boxes = [[100, 100, 200, 180], [300, 100, 400, 180], [500, 100, 600, 180]]
    gt = [gt_frame(["Van", "Truck", "Car"], boxes)]
    keep = [0, 1, 2] if with_truck_det else [0, 2]
    dt = [detections_frame(["Car"] * len(keep), np.array(boxes)[keep], np.array([0.9, 0.8, 0.7])[keep])]
    curve = car_curve(gt, dt)
    assert (curve.n_gt, curve.tp.tolist(), curve.fp.tolist()) == (1, [1], [fp])
    gt = [gt_frame(["Person_sitting", "Pedestrian"], boxes[:1] + boxes[2:])]
    dt = [detections_frame(["Pedestrian"] * 2, boxes[:1] + boxes[2:], [0.9, 0.7])]
    assert car_curve(gt, dt, cls="Pedestrian").fp.tolist() == [0]


def test_min_height_gt_le_detection_lt():
    """GT is ignored at height <= 25 (Moderate) / 40 (Easy); a detection only below it (int(h) < 25 / 40)."""
    gt_boxes = [[0, 200, 50, 225.0], [100, 200, 150, 225.01], [200, 200, 250, 240.0], [300, 200, 350, 240.01]]
    gt = [gt_frame(["Car"] * 4, gt_boxes)]
    assert [evaluate_class(gt, [as_detections(gt[0])], "Car")[d].n_gt for d in DIFFICULTIES] == [1, 3, 3]
    target = [[600, 0, 700, 100]]  # one counted GT with a perfect detection, so there is a threshold
    gt = [gt_frame(["Car"], target)]
    for height, diff, fp in ((25.0, "moderate", 1), (24.99, "moderate", 0), (40.0, "easy", 1), (39.99, "easy", 0)):
        dt = [detections_frame(["Car", "Car"], target + [[0, 0, 50, height]], [0.5, 0.9])]
        assert car_curve(gt, dt, diff).fp.tolist() == [fp], (height, diff)


@pytest.mark.parametrize("occluded, truncated, counted", [
    (3, 0.0, [0, 0, 0]), (2, 0.0, [0, 0, 1]), (1, 0.0, [0, 1, 1]), (0, 0.15, [1, 1, 1]), (0, 0.16, [0, 1, 1]),
    (0, 0.5, [0, 0, 1]), (0, 0.51, [0, 0, 0])])
def test_occlusion_and_truncation_limits(occluded, truncated, counted):
    gt = [gt_frame(["Car"], [[0, 0, 100, 100]], [truncated], [occluded])]
    curves = evaluate_class(gt, [as_detections(gt[0])], "Car")
    assert [curves[d].n_gt for d in DIFFICULTIES] == counted
    assert [kitti_ap(gt, [as_detections(gt[0])])["Car"]["AP40"][d] is None for d in DIFFICULTIES] == \
           [not c for c in counted]


def test_class_without_ground_truth_is_null():
    gt = [gt_frame(["Car"], [[0, 0, 100, 100]])]
    dt = [detections_frame(["Cyclist"], [[0, 0, 100, 100]], [0.9])]
    ap = json.loads(json.dumps(kitti_ap(gt, dt)))
    assert ap["Cyclist"]["AP11"] == ap["Cyclist"]["AP40"] == {"easy": None, "moderate": None, "hard": None}
    assert ap["Car"]["AP40"]["easy"] == 0.0


@pytest.mark.parametrize("n_gt", [1, 2, 3, 10, 20, 40, 41])
@pytest.mark.parametrize("tied", [False, True])
def test_few_gt_quirk(n_gt, tied):
    """docs/kitti.md section 4: perfect detections give AP40 = (n-1)/40 and AP11 = ceil(n/4)/11 for n <= 40, 100
    from 41."""
    boxes = grid_boxes(n_gt)
    gt = [gt_frame(["Car"] * len(b), b) for b in np.array_split(boxes, 5)]
    scores = np.array_split(np.ones(n_gt) if tied else np.linspace(1.0, 0.5, n_gt), 5)
    dt = [detections_frame(f.names, f.boxes, s) for f, s in zip(gt, scores)]
    ap = kitti_ap(gt, dt, classes=("Car",))["Car"]
    expected40 = 100.0 if n_gt > 40 else (n_gt - 1) / 40 * 100
    expected11 = 100.0 if n_gt > 40 else math.ceil(n_gt / 4) / 11 * 100
    assert ap["AP40"] == pytest.approx(dict.fromkeys(DIFFICULTIES, expected40))
    assert ap["AP11"] == pytest.approx(dict.fromkeys(DIFFICULTIES, expected11))


def test_gt_as_detections_with_100_objects_per_class_scores_100():
    names = [c for c in CLASSES for _ in range(110)]
    rng = np.random.default_rng(0)
    occluded = np.where(rng.random(len(names)) < 0.1, rng.integers(1, 4, len(names)), 0)
    gt = [gt_frame(names[i::10], grid_boxes(len(names[i::10])), occluded=occluded[i::10],
                   dontcare=[[900, 0, 950, 50]]) for i in range(10)]
    ap = kitti_ap(gt, [as_detections(f) for f in gt])
    assert ap == {c: {"AP11": dict.fromkeys(DIFFICULTIES, 100.0), "AP40": dict.fromkeys(DIFFICULTIES, 100.0)}
                  for c in ("Car", "Pedestrian", "Cyclist")}


def test_pass2_takes_largest_overlap_and_pass1_highest_score():
    """Pass 1: GT1 takes A (0.9 beats B's 0.5), GT2 then finds nothing; thresholds [0.9, 0.1].
    Pass 2 at 0.1: GT1 takes B (IoU 0.96 beats A's 0.79), which leaves A (IoU 0.85) to GT2: 3 TP, 0 FP."""
    gt = [gt_frame(["Car"] * 3, [[0, 0, 100, 100], [0, 20, 100, 120], [300, 0, 400, 100]])]
    dt = [detections_frame(["Car"] * 3, [[0, 12, 100, 112], [0, -2, 100, 98], [300, 0, 400, 100]], [0.9, 0.5, 0.1])]
    curve = car_curve(gt, dt)
    assert curve.thresholds.tolist() == [0.9, 0.1]
    assert (curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == ([1, 3], [0, 0], [2, 0])


def test_ties_broken_by_detection_index():
    """Pass 1: d0 and d1 tie at 0.8, GT1 takes d0 (lower index) and GT2 gets nothing: one TP score, one threshold.
    Pass 2: GT1 takes d1 (larger overlap), GT2 takes d0."""
    gt = [gt_frame(["Car"] * 2, [[0, 200, 60, 260], [0, 216, 60, 276]])]
    dt = [detections_frame(["Car"] * 2, [[0, 214, 60, 263], [0, 200, 60, 249]], [0.8, 0.8])]
    curve = car_curve(gt, dt)
    assert (curve.thresholds.tolist(), curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == \
           ([0.8], [2], [0], [0])


def test_small_detection_of_other_class_absorbs_gt_unless_valid_one_overlaps():
    """Moderate, a 30 px Car GT: a 24.5 px Pedestrian detection (ignored_det = 1, tested before its class) absorbs
    it (no FN); a valid Car detection with a smaller overlap is preferred over it (TP)."""
    gt = [gt_frame(["Car", "Car"], [[0, 100, 60, 130], [200, 100, 300, 200]])]
    small, valid, other = [0, 100, 60, 124.5], [6, 100, 66, 126], [200, 100, 300, 200]
    dt = [detections_frame(["Car", "Pedestrian"], [other, small], [0.5, 0.9])]
    curve = car_curve(gt, dt)
    assert (curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == ([1], [0], [0])
    dt = [detections_frame(["Car", "Pedestrian", "Car"], [other, small, valid], [0.5, 0.9, 0.6])]
    curve = car_curve(gt, dt)
    assert (curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == ([2], [0], [0])


def test_ignored_fallback_takes_lowest_index():
    """Without a valid candidate GT1 takes the first ignored detection S1 (IoU 0.73), not S2 (IoU 0.82), so GT2,
    which only S1 overlaps, is an FN."""
    gt = [gt_frame(["Car"] * 3, [[0, 100, 60, 130], [0, 108, 60, 138], [200, 100, 300, 200]])]
    dt = [detections_frame(["Car"] * 3, [[0, 107, 60, 131.5], [0, 100, 60, 124.5], [200, 100, 300, 200]],
                           [0.9, 0.9, 0.5])]
    curve = car_curve(gt, dt)
    assert (curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == ([1], [0], [1])


@pytest.mark.parametrize("cls, det_y2", [("Pedestrian", 50.0), ("Car", 70.0)])
def test_overlap_must_exceed_min_overlap(cls, det_y2):
    """IoU exactly 0.5 (Pedestrian) / 0.7 (Car) is not a match: FP + FN."""
    gt = [gt_frame([cls] * 2, [[0, 0, 10, 100], [100, 0, 110, 100]])]
    dt = [detections_frame([cls] * 2, [[0, 0, 10, det_y2], [100, 0, 110, 100]], [0.9, 0.1])]
    assert np_box_overlap(dt[0].boxes[:1], gt[0].boxes[:1])[0, 0] == (0.5 if cls == "Pedestrian" else 0.7)
    curve = car_curve(gt, dt, cls=cls)
    assert (curve.thresholds.tolist(), curve.tp.tolist(), curve.fp.tolist(), curve.fn.tolist()) == \
           ([0.1], [1], [1], [1])


def test_all_detections_absorbed_gives_nan_precision_as_cpp():
    """Pass 1 gives A a TP at 0.8; pass 2 at 0.8 hands D2 to the Van and D1 lies in a DontCare region: tp + fp = 0,
    so precision[0] = 0/0 = NaN (AP11 NaN, reported as JSON null by evaluation.metrics), AP40 = 0."""
    gt = [gt_frame(["Van", "Car"], [[0, 0, 100, 100], [0, 15, 100, 115]], dontcare=[[0, -12, 100, 88]])]
    dt = [detections_frame(["Car", "Car"], [[0, -12, 100, 88], [0, 7, 100, 107]], [0.9, 0.8])]
    curve = car_curve(gt, dt)
    assert (curve.thresholds.tolist(), curve.tp.tolist(), curve.fp.tolist()) == ([0.8], [0], [0])
    assert math.isnan(curve.ap11) and curve.ap40 == 0.0


def test_rejects_unknown_class_and_frame_mismatch():
    gt = [gt_frame(["Car"], [[0, 0, 100, 100]])]
    with pytest.raises(ValueError, match="Van"):
        kitti_ap(gt, [as_detections(gt[0])], classes=("Van",))
    with pytest.raises(ValueError, match="1 ground-truth frames but 0"):
        kitti_ap(gt, [])


def test_thresholds_and_envelope_match_reference():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n_gt = int(rng.integers(1, 120))
        v = np.round(rng.random(int(rng.integers(0, n_gt + 1))), int(rng.integers(1, 4)))
        assert get_thresholds(v, n_gt).tolist() == ref_get_thresholds(list(v), n_gt)
        tp = rng.integers(0, 3, int(rng.integers(0, 42)))
        fp = rng.integers(0, 3, len(tp))
        precision = [tp[i] / (tp[i] + fp[i]) if tp[i] + fp[i] else math.nan for i in range(len(tp))] + \
                    [0.0] * (41 - len(tp))
        expected = [ref_max_element(precision[i:]) for i in range(len(tp))] + precision[len(tp):]
        np.testing.assert_array_equal(precision_envelope(tp, fp), expected)

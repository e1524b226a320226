"""COCO mAP through pycocotools on hand-made frames with hand-computed values."""
import json

import pytest

from data.kitti_labels import detections_frame
from evaluation.coco_map import coco_map
from tests.evaluation.test_kitti_ap import gt_frame

CAR_A, CAR_B, PED = [10, 10, 110, 60], [300, 20, 380, 80], [500, 50, 530, 130]


def test_perfect_detections_score_100_and_classes_without_gt_are_null():
    gt = [gt_frame(["Car", "Pedestrian"], [CAR_A, PED]), gt_frame(["Car", "Van"], [CAR_B, CAR_A])]
    dt = [detections_frame(["Car", "Pedestrian"], [CAR_A, PED], [0.9, 0.8]), detections_frame(["Car"], [CAR_B], [0.7])]
    result = json.loads(json.dumps(coco_map(gt, dt, classes=("Car", "Pedestrian", "Cyclist"))))
    assert result["mAP"] == pytest.approx(100.0) and result["mAP50"] == pytest.approx(100.0)
    assert result["per_class"] == {"Car": pytest.approx(100.0), "Pedestrian": pytest.approx(100.0), "Cyclist": None}


def test_fp_between_tps_hand_computed():
    """2 GT; detections TP 0.9, FP 0.8, TP 0.7: recall [.5, .5, 1], interpolated precision [1, 2/3, 2/3];
    101 recall points: 51 at 1 (r <= .5), 50 at 2/3 -> AP = (51 + 50 * 2/3) / 101 = 83.50 %."""
    gt = [gt_frame(["Car"], [CAR_A]), gt_frame(["Car"], [CAR_B])]
    dt = [detections_frame(["Car", "Car"], [CAR_A, [600, 0, 700, 50]], [0.9, 0.8]),
          detections_frame(["Car"], [CAR_B], [0.7])]
    result = coco_map(gt, dt, classes=("Car",))
    expected = (51 + 50 * 2 / 3) / 101 * 100
    assert result["mAP50"] == pytest.approx(expected)
    assert result["mAP"] == pytest.approx(expected)  # exact boxes: the same at every IoU threshold
    assert result["per_class"]["Car"] == pytest.approx(expected)


@pytest.mark.parametrize("dontcare, expected", [([[590, 0, 710, 60]], 100.0), ([], 50.0)])
def test_detection_inside_dontcare_is_ignored(dontcare, expected):
    """A 0.9 detection inside a DontCare region (crowd GT) is ignored; without the region it is an FP ranked above
    the only TP: precision 0.5 at every recall."""
    gt = [gt_frame(["Car"], [CAR_A], dontcare=dontcare)]
    dt = [detections_frame(["Car", "Car"], [[600, 0, 700, 50], CAR_A], [0.9, 0.8])]
    assert coco_map(gt, dt, classes=("Car",))["mAP50"] == pytest.approx(expected)


def test_untrained_classes_are_not_gt_and_no_detections_score_zero():
    """A Car detection on a Van is an FP when Van is not a category (no neighbour rule in COCO)."""
    gt = [gt_frame(["Car", "Van"], [CAR_A, CAR_B])]
    dt = [detections_frame(["Car", "Car"], [CAR_B, CAR_A], [0.9, 0.8])]
    assert coco_map(gt, dt, classes=("Car",))["mAP50"] == pytest.approx(50.0)
    assert coco_map(gt, dt, classes=("Car", "Van"))["per_class"]["Van"] == pytest.approx(0.0)
    empty = [detections_frame([], [], [])]
    assert coco_map(gt, empty, classes=("Car", "Cyclist")) == {"mAP": 0.0, "mAP50": 0.0,
                                                                "per_class": {"Car": 0.0, "Cyclist": None}}

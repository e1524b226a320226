"""eval.py's model-free mode on a tiny hand-made KITTI set: JSON shape and values, and its bad-input messages."""
import json
import subprocess
import sys

import pytest

from data.kitti_labels import KittiFormatError, detections_frame
from eval import get_args_parser, main
from evaluation.metrics import evaluate_frames, format_metrics
from evaluation.results import read_results, write_results
from tests.conftest import REPO
from tests.evaluation.test_kitti_ap import gt_frame

GT_TAIL = "0.00 0 0.00 {} 1.50 1.60 3.90 1.00 1.50 20.00 0.00"
RESULT_TAIL = "-1 -1 -10 {} -1 -1 -1 -1000 -1000 -1000 -10 {}"
LABELS = {
    "000000": ["Car " + GT_TAIL.format("10.00 10.00 110.00 60.00"),
               "Pedestrian " + GT_TAIL.format("500.00 50.00 530.00 130.00")],
    "000001": ["Car " + GT_TAIL.format("300.00 20.00 380.00 80.00"),
               "DontCare -1 -1 -10 600.00 0.00 700.00 50.00 -1 -1 -1 -1000 -1000 -1000 -10"],
    "000002": ["Car " + GT_TAIL.format("100.00 100.00 200.00 180.00")],
}
RESULTS = {  # 000002 has no result file: its Car is missed
    "000000": ["Car " + RESULT_TAIL.format("10.00 10.00 110.00 60.00", 0.9),
               "Pedestrian " + RESULT_TAIL.format("500.00 50.00 530.00 130.00", 0.8)],
    "000001": ["Car " + RESULT_TAIL.format("300.00 20.00 380.00 80.00", 0.7),
               "Car " + RESULT_TAIL.format("610.00 5.00 690.00 45.00", 0.95)],  # inside the DontCare region
}


def write_set(root, results=RESULTS):
    for name, files in (("labels", LABELS), ("results", results)):
        (root / name).mkdir()
        for frame_id, lines in files.items():
            (root / name / f"{frame_id}.txt").write_text("".join(line + "\n" for line in lines))
    (root / "val.txt").write_text("000000\n000001\n000002")  # no trailing newline, like the 3DOP lists


def test_cli_scores_result_files(tmp_path):
    """Car: 3 counted GT, TPs at 0.9 and 0.7, the 0.95 detection lies in DontCare: thresholds [0.9, 0.7] with
    precision 1 -> AP40 1/40, AP11 1/11. Pedestrian: 1 GT -> AP40 0, AP11 1/11. COCO Car: recall 2/3 at precision 1
    -> 67 of 101 recall points = 66.34; Pedestrian 100."""
    write_set(tmp_path)
    out = tmp_path / "out" / "metrics.json"
    proc = subprocess.run([sys.executable, "eval.py", "--results", str(tmp_path / "results"), "--labels",
                           str(tmp_path / "labels"), "--split", str(tmp_path / "val.txt"), "--json", str(out),
                           "--classes", "Car", "Pedestrian", "Cyclist"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("no result file") == 1
    assert "1 of 3 frames have no result file" in proc.stderr and "(first: 000002)" in proc.stderr
    metrics = json.loads(out.read_text())
    assert (out.parent / "metrics_pr.png").stat().st_size > 0
    difficulties = {"easy", "moderate", "hard"}
    assert set(metrics) == {"kitti", "coco"} and list(metrics["kitti"]) == ["Car", "Pedestrian", "Cyclist"]
    assert all(set(v) == {"AP11", "AP40"} and set(v["AP11"]) == set(v["AP40"]) == difficulties
               for v in metrics["kitti"].values())
    assert metrics["kitti"]["Car"] == {"AP11": dict.fromkeys(difficulties, pytest.approx(100 / 11)),
                                       "AP40": dict.fromkeys(difficulties, pytest.approx(2.5))}
    assert metrics["kitti"]["Pedestrian"] == {"AP11": dict.fromkeys(difficulties, pytest.approx(100 / 11)),
                                              "AP40": dict.fromkeys(difficulties, 0.0)}
    assert metrics["kitti"]["Cyclist"] == {"AP11": dict.fromkeys(difficulties), "AP40": dict.fromkeys(difficulties)}
    car = 67 / 101 * 100
    assert metrics["coco"] == {"mAP": pytest.approx((car + 100) / 2), "mAP50": pytest.approx((car + 100) / 2),
                               "per_class": {"Car": pytest.approx(car), "Pedestrian": pytest.approx(100.0),
                                             "Cyclist": None}}
    assert format_metrics(metrics) in proc.stdout


def run_main(root, *extra):
    args = ["--results", str(root / "results"), "--labels", str(root / "labels"), "--json", str(root / "m.json")]
    return main(get_args_parser().parse_args(args + list(extra)))


def test_result_line_with_15_fields_names_file_and_line(tmp_path):
    bad = dict(RESULTS, **{"000001": RESULTS["000001"][:1] + [RESULTS["000001"][1].rsplit(" ", 1)[0]]})
    write_set(tmp_path, bad)
    proc = subprocess.run([sys.executable, "eval.py", "--results", str(tmp_path / "results"), "--labels",
                           str(tmp_path / "labels"), "--json", str(tmp_path / "m.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and not (tmp_path / "m.json").exists()
    assert f"eval.py: error: {tmp_path / 'results' / '000001.txt'}:2: expected 16 space-separated fields, found 15" \
        in proc.stderr
    with pytest.raises(KittiFormatError, match=r"000001\.txt:2: expected 16"):  # main() raises; the CLI exits
        run_main(tmp_path)


def test_missing_label_file_names_it(tmp_path):
    write_set(tmp_path)
    (tmp_path / "val.txt").write_text("000000\n000007\n")
    with pytest.raises(FileNotFoundError, match=r"000007\.txt: label file of frame 000007 not found"):
        run_main(tmp_path, "--split", str(tmp_path / "val.txt"))


def test_ids_default_to_every_label_file(tmp_path, caplog):
    write_set(tmp_path)
    metrics = run_main(tmp_path, "--classes", "Car")
    assert list(metrics["kitti"]) == ["Car"] and metrics["kitti"]["Car"]["AP40"]["moderate"] == pytest.approx(2.5)
    assert [r.getMessage() for r in caplog.records if "no result file" in r.getMessage()] == [
        f"1 of 3 frames have no result file in {tmp_path / 'results'}: treated as no detections (first: 000002)"]


def test_write_results_round_trip(tmp_path):
    """One file per frame, empty when no detections; boxes clipped to the image and rounded to 2 decimals; a box
    left without area by clipping is dropped."""
    dets = [(["Car", "Pedestrian", "Car"], [[-5, 10, 50.004, 60], [100, 20, 130.126, 90], [1300, 0, 1400, 50]],
             [0.9, 0.5, 0.4]), ([], [], [])]
    write_results(tmp_path / "res", ["000010", "000011"], dets, image_sizes=[(1242, 375), (1224, 370)])
    assert (tmp_path / "res" / "000011.txt").read_text() == ""
    missing = []
    frames = read_results(tmp_path / "res", ["000010", "000011", "000012"], missing=missing)
    assert missing == ["000012"] and [len(f) for f in frames] == [2, 0, 0]
    assert frames[0].names == ("Car", "Pedestrian")
    assert frames[0].boxes.tolist() == [[0.0, 10.0, 50.0, 60.0], [100.0, 20.0, 130.13, 90.0]]
    assert frames[0].scores.tolist() == [0.9, 0.5]
    with pytest.raises(ValueError, match="counts must match"):
        write_results(tmp_path / "res", ["000010"], dets)


def test_metrics_json_has_no_nan():
    """The devkit's 0/0 precision (tests/evaluation/test_kitti_ap.py) makes AP11 NaN; the report carries null
    instead."""
    gt = [gt_frame(["Van", "Car"], [[0, 0, 100, 100], [0, 15, 100, 115]], dontcare=[[0, -12, 100, 88]])]
    dt = [detections_frame(["Car", "Car"], [[0, -12, 100, 88], [0, 7, 100, 107]], [0.9, 0.8])]
    metrics = evaluate_frames(gt, dt, ["Car"])
    assert metrics["kitti"]["Car"]["AP11"]["moderate"] is None and metrics["kitti"]["Car"]["AP40"]["moderate"] == 0.0
    json.dumps(metrics, allow_nan=False)

"""eval.py --weights and detect.py on a checkpoint of the tiny CI config."""
import json

from tests.conftest import REPO
from tests.conftest import run_python as run


def test_eval_weights_and_detect(tmp_path):
    run("train.py", "--config", str(REPO / "cfg" / "ci-tiny.yaml"), "--epochs", "1", "--burn-in-images", "4",
        "--project", str(tmp_path), "--name", "r")
    best = tmp_path / "r" / "best.pt"
    out = tmp_path / "eval"
    done = run("eval.py", "--weights", str(best), "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"kitti", "coco"} and set(metrics["kitti"]) == {"Car", "Pedestrian", "Cyclist"}
    assert "COCO mAP" in done.stdout
    root = next((REPO / ".cache" / "synthetic").glob("*n16_s0*"))
    val_ids = (root / "ImageSets" / "val.txt").read_text().split()
    assert sorted(p.stem for p in (out / "results").iterdir()) == sorted(val_ids), "one result file per val frame"
    image = root / "training" / "image_2" / f"{val_ids[0]}.png"
    run("detect.py", "--weights", str(best), "--source", str(image), "--out", str(tmp_path / "det"),
        "--conf-thres", "0.001")
    assert (tmp_path / "det" / f"{val_ids[0]}.png").stat().st_size > 0
    lines = (tmp_path / "det" / f"{val_ids[0]}.txt").read_text().splitlines()
    assert lines and all(len(line.split()) == 16 for line in lines)

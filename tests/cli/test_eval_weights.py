"""eval.py --weights and detect.py on a checkpoint of the tiny CI config."""
import json

import pytest

from data.synthetic import ensure_dataset
from tests.conftest import REPO
from tests.conftest import run_python as run


@pytest.mark.slow  # trains, then evaluates and detects
def test_eval_weights_and_detect(tmp_path):
    run("train.py", "--config", str(REPO / "cfg" / "ci-tiny.yaml"), "--epochs", "1", "--burn-in-images", "4",
        "--project", str(tmp_path), "--name", "r")
    best = tmp_path / "r" / "best.pt"
    out = tmp_path / "eval"
    done = run("eval.py", "--weights", str(best), "--out", str(out))
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"kitti", "coco"} and set(metrics["kitti"]) == {"Car", "Pedestrian", "Cyclist"}
    assert "COCO mAP" in done.stdout
    root = ensure_dataset(REPO / ".cache" / "synthetic", 16, 0)
    val_ids = (root / "ImageSets" / "val.txt").read_text().split()
    assert sorted(p.stem for p in (out / "results").iterdir()) == sorted(val_ids), "one result file per val frame"
    image = root / "training" / "image_2" / f"{val_ids[0]}.png"
    run("detect.py", "--weights", str(best), "--source", str(image), "--out", str(tmp_path / "det"),
        "--conf-thres", "0.001")
    assert (tmp_path / "det" / f"{val_ids[0]}.png").stat().st_size > 0
    lines = (tmp_path / "det" / f"{val_ids[0]}.txt").read_text().splitlines()
    assert lines and all(len(line.split()) == 16 for line in lines)


def test_eval_and_detect_run_a_darknet_weights_file(tmp_path):
    """A darknet model from its .weights, .cfg and names file (as the COCO yolov3 is shipped), written here."""
    weights, names = tmp_path / "model.weights", tmp_path / "kitti.names"
    code = ("import sys, torch; from models.darknet import Darknet; from models.weights import save_darknet_weights;"
            "torch.manual_seed(0); save_darknet_weights(Darknet('cfg/yolov3-small-kitti.cfg'), sys.argv[1])")
    run("-c", code, str(weights))
    names.write_text("\n".join(["Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc"]))
    root = ensure_dataset(REPO / ".cache" / "synthetic", 16, 0)
    model = ["--weights", str(weights), "--cfg", "cfg/yolov3-small-kitti.cfg", "--names", str(names)]
    run("eval.py", *model, "--data", str(root), "--out", str(tmp_path / "eval"))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert set(metrics["coco"]["per_class"]) == {"Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist",
                                                 "Tram", "Misc"}
    image = sorted((root / "training" / "image_2").glob("*.png"))[0]
    run("detect.py", *model, "--source", str(image), "--out", str(tmp_path / "det"))
    assert (tmp_path / "det" / f"{image.stem}.txt").is_file()
    done = run("detect.py", "--weights", str(weights), "--source", str(image), "--out", str(tmp_path / "x"),
               check=False)
    assert done.returncode == 1 and "needs its --cfg and a --names file" in done.stderr


def test_eval_img_size_is_parsed_checked_and_reaches_the_model_settings(tmp_path):
    import pytest

    from data.transforms import parse_size
    from utils.errors import UserError
    assert parse_size("832x256", "--img-size") == (832, 256) and parse_size("416,128", "--img-size") == (416, 128)
    assert parse_size(None, "--img-size") is None
    for bad in ("100,50", "416", "a,b"):
        with pytest.raises(UserError, match="--img-size"):
            parse_size(bad, "--img-size")
    weights, names = tmp_path / "model.weights", tmp_path / "kitti.names"
    names.write_text("\n".join(["Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc"]))
    code = ("import sys, torch; from models.darknet import Darknet; from models.weights import save_darknet_weights;"
            "from training.inference import load; cfg = 'cfg/yolov3-small-kitti.cfg';"
            "save_darknet_weights(Darknet(cfg), sys.argv[1]);"
            "print(load(sys.argv[1], cfg, sys.argv[2], size=(320, 96)).settings.size,"
            "     load(sys.argv[1], cfg, sys.argv[2]).settings.size,"
            "     torch.utils.deterministic.fill_uninitialized_memory)")
    done = run("-c", code, str(weights), str(names))
    # the cfg's [net] size when not given; strict mode with TrainConfig's fill_uninitialized_memory, as training
    assert done.stdout.split("\n")[-2] == "(320, 96) (416, 128) False"


def test_class_names_with_spaces_keep_result_lines_at_16_fields(tmp_path):
    """COCO's "traffic light": the name becomes traffic_light (as KITTI's Person_sitting), so a result line written
    for it reads back."""
    weights, names = tmp_path / "model.weights", tmp_path / "names.txt"
    names.write_text("\n".join(["Car", "traffic light", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram",
                                "fire  hydrant"]) + "\n")
    code = ("import sys; from models.darknet import Darknet; from models.weights import save_darknet_weights;"
            "from training.inference import load; cfg = 'cfg/yolov3-small-kitti.cfg';"
            "save_darknet_weights(Darknet(cfg), sys.argv[1]);"
            "print(load(sys.argv[1], cfg, sys.argv[2]).classes)")
    done = run("-c", code, str(weights), str(names))
    assert "'traffic_light'" in done.stdout and "'fire_hydrant'" in done.stdout

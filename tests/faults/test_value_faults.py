"""The fault catalogue of values: numbers outside their range, YAML booleans where numbers belong, empty preset
keys, flags that a checkpoint makes meaningless, and two images whose results would share one name."""
import cv2
import numpy as np
import pytest

import eval as eval_cli
from tests.conftest import REPO, run_python
from tests.faults.conftest import assert_one_error_line, train
from training.config import load_yaml
from utils.errors import UserError


def test_user_gives_thresholds_and_momentum_outside_their_range(tmp_path):
    for prog, flag, value, key, span in (
            ("eval.py", "--conf-thres", "1.5", "conf_thres", "0 <= conf_thres <= 1"),
            ("detect.py", "--conf-thres", "nan", "conf_thres", "0 <= conf_thres <= 1")):
        extra = ["--source", str(tmp_path), "--out", str(tmp_path / "out")] if prog == "detect.py" else []
        done = run_python(prog, "--weights", str(tmp_path / "best.pt"), flag, value, *extra, check=False)
        assert_one_error_line(done, prog, flag, f"{key} out of range ({span})")
    for flag, value, span in (("--iou-thres", "-1", "0 <= iou_thres <= 1"), ("--max-det", "0", "max_det >= 1")):
        args = eval_cli.get_args_parser().parse_args(["--weights", str(tmp_path / "best.pt"), flag, value])
        with pytest.raises(UserError, match=f"{flag}: .* out of range \\({span}\\)"):
            eval_cli.main(args)
    assert_one_error_line(train(tmp_path, "x", "--momentum", "1.5"), "train.py", "--momentum",
                          "0 <= momentum < 1", "got 1.5")
    assert not (tmp_path / "x").exists()


def test_every_numeric_flag_states_its_range_in_help():
    text = run_python("train.py", "--help").stdout
    for span in ("0 <= momentum < 1", "lr > 0", "epochs >= 1", "0 <= conf_thres <= 1", "-1 <= seed_init < 2**63"):
        assert span in " ".join(text.split()), span
    assert "0 <= conf_thres <= 1" in " ".join(run_python("eval.py", "--help").stdout.split())
    assert "0 <= iou_thres <= 1" in " ".join(run_python("detect.py", "--help").stdout.split())


def test_user_writes_a_yaml_boolean_where_a_number_belongs(tmp_path):
    preset = tmp_path / "preset.yaml"
    preset.write_text("momentum: true\n")
    done = run_python("train.py", "--config", str(preset), "--project", str(tmp_path), check=False)
    assert_one_error_line(done, "train.py", f"{preset}: momentum expects float, got True")
    for line, key in (("epochs: false", "epochs"), ("img_size: [true, 96]", "img_size"), ("lr: yes", "lr")):
        preset.write_text(line + "\n")
        with pytest.raises(UserError, match=f"{preset}: {key} expects"):
            load_yaml(preset)


def test_user_leaves_a_preset_key_empty(tmp_path):
    """An empty value is YAML's null: it became the string 'None' (errors naming None/ImageSets, a ./None cache)."""
    preset = tmp_path / "preset.yaml"
    preset.write_text("synthetic_cache:\n")
    done = run_python("train.py", "--config", str(preset), "--project", str(tmp_path), check=False)
    assert_one_error_line(done, "train.py", f"{preset}: synthetic_cache is empty", "leave the key out")
    assert not (REPO / "None").exists() and not (tmp_path / "exp").exists()
    for key in ("data", "weights", "model", "val_split"):
        preset.write_text(f"{key}:\n")
        with pytest.raises(UserError, match=f"{preset}: {key} is empty"):
            load_yaml(preset)
    preset.write_text("model: ''\n")
    with pytest.raises(UserError, match="model is empty"):
        load_yaml(preset)


def test_user_gives_darknet_flags_with_a_checkpoint(tmp_path, finished_run):
    names = tmp_path / "coco.names"
    names.write_text("car\n")
    done = run_python("eval.py", "--weights", str(finished_run / "best.pt"), "--names", str(names),
                      "--out", str(tmp_path / "eval"), check=False)
    assert_one_error_line(done, "eval.py", "--names: for darknet .weights files", "leave them out")
    image = tmp_path / "frame.png"
    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    done = run_python("detect.py", "--weights", str(finished_run / "best.pt"), "--cfg", "cfg/yolov3-tiny-kitti.cfg",
                      "--source", str(image), "--out", str(tmp_path / "out"), check=False)
    assert_one_error_line(done, "detect.py", "--cfg: for darknet .weights files")


def test_user_gives_model_flags_to_model_free_eval(tmp_path):
    done = run_python("eval.py", "--results", str(tmp_path), "--labels", str(tmp_path), "--json",
                      str(tmp_path / "out" / "m.json"), "--conf-thres", "0.3", check=False)
    assert_one_error_line(done, "eval.py", "--conf-thres: for model mode")


def test_user_detects_on_a_folder_with_x_png_and_x_jpg(tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    image = np.zeros((64, 64, 3), np.uint8)
    for name in ("x.png", "x.jpg"):
        cv2.imwrite(str(source / name), image)
    done = run_python("detect.py", "--weights", str(tmp_path / "best.pt"), "--source", str(source), "--out",
                      str(tmp_path / "out"), check=False)
    assert_one_error_line(done, "detect.py", str(source / "x.jpg"), str(source / "x.png"), "rename or move one")
    assert not (tmp_path / "out").exists()


def test_user_generates_the_synthetic_set_on_a_full_disk(tmp_path):
    """A write limit stands in for a full disk: the error names the file, and the folder is left as it was, so the
    same command runs again (a 0-byte PNG left behind made the rerun fail with 'not empty')."""
    out = tmp_path / "synth"
    code = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000)); "
            "sys.argv = ['synthetic'] + sys.argv[1:]; runpy.run_module('data.synthetic', run_name='__main__')")
    done = run_python("-c", code, "--out", str(out), "--num", "2", check=False)
    assert_one_error_line(done, "data.synthetic", str(out / "training" / "image_2" / "000000.png"),
                          "run the command again")
    assert not out.exists()
    assert run_python("-m", "data.synthetic", "--out", str(out), "--num", "2", check=False).returncode == 0

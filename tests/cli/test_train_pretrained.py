"""train.py --config cfg/tiny-pretrained.yaml --weights yolov3-tiny.weights: darknet's 80-class COCO model starts
the 8-class KITTI YOLOv3-tiny (skipped without ../shared). Shortened to two steps at a small input."""
import torch

from tests.conftest import REPO, run_python, shared_path


def test_the_pretrained_preset_starts_from_darknets_coco_weights(tmp_path):
    weights = shared_path("darknet_weights", "yolov3-tiny.weights")
    done = run_python("train.py", "--config", str(REPO / "cfg" / "tiny-pretrained.yaml"), "--weights", str(weights),
                      "--synthetic-num", "16", "--img-size", "256,96", "--batch-size", "4", "--epochs", "1",
                      "--burn-in-images", "4", "--eval-every", "1", "--project", str(tmp_path), "--name", "ft")
    assert (f"loaded 66 of 70 tensors from {weights} (80 classes); head layers 15, 22 (another class count) left "
            "at init") in done.stdout
    state = torch.load(tmp_path / "ft" / "last.pt", weights_only=True)["model"]
    assert state["module_list.15.conv.weight"].shape == (39, 512, 1, 1)  # 3 x (5 + 8 KITTI classes)

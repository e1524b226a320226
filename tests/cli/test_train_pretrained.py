"""cfg/tiny-pretrained.yaml with --weights yolov3-tiny.weights: darknet's 80-class COCO model starts the 8-class
KITTI YOLOv3-tiny, every layer but the heads (skipped without ../shared)."""
import torch

import train
from models.darknet import Darknet
from models.weights import load_darknet_weights
from tests.conftest import REPO, run_python, shared_path
from training import build


def test_the_pretrained_preset_starts_from_darknets_coco_weights():
    weights = shared_path("darknet_weights", "yolov3-tiny.weights")
    cfg = train.resolve_config(train.get_args_parser().parse_args(
        ["--config", str(REPO / "cfg" / "tiny-pretrained.yaml"), "--weights", str(weights)]))
    assert cfg.model == "cfg/yolov3-tiny-kitti.cfg" and (cfg.epochs, cfg.eval_every) == (10, 2)
    with torch.random.fork_rng():
        net = build.model(cfg, torch.device("cpu"))
        message = build.initial_weights(net, cfg)
    assert message == (f"loaded 66 of 70 tensors from {weights} (80 classes); head layers 15, 22 (another class "
                       "count) left at init")
    coco = Darknet(shared_path("darknet_cfg", "yolov3-tiny.cfg"))
    load_darknet_weights(coco, weights)
    ours, theirs = net.state_dict(), coco.state_dict()
    assert all(torch.equal(ours[k], theirs[k]) for k in ours if not k.startswith(("module_list.15.",
                                                                                    "module_list.22.")))
    assert ours["module_list.15.conv.weight"].shape == (39, 512, 1, 1)  # 3 x (5 + 8 KITTI classes), from --seed


def test_head_init_starts_each_kitti_class_from_its_coco_rows():
    """--head-init coco-kitti: the heads' box and objectness rows are COCO's, Car and Van start from COCO's car row,
    Pedestrian from person, ...; Misc (no COCO counterpart) keeps its rows from --seed."""
    weights = shared_path("darknet_weights", "yolov3-tiny.weights")
    cfg = train.resolve_config(train.get_args_parser().parse_args(
        ["--config", str(REPO / "cfg" / "kitti-mini.yaml"), "--weights", str(weights)]))
    assert cfg.head_init == "coco-kitti"
    with torch.random.fork_rng():
        net = build.model(cfg, torch.device("cpu"))
        seeded = {k: v.clone() for k, v in net.state_dict().items()}
        message = build.initial_weights(net, cfg)
    assert "head layers 15, 22 (another class count) started from the file's" in message
    assert "Car <- car, Van <- car" in message and message.endswith("Misc from --seed")
    coco = Darknet(shared_path("darknet_cfg", "yolov3-tiny.cfg"))
    load_darknet_weights(coco, weights)
    coco_row = {"person": 0, "bicycle": 1, "car": 2, "train": 6, "truck": 7}
    kitti_from = {"Car": "car", "Van": "car", "Truck": "truck", "Pedestrian": "person", "Person_sitting": "person",
                  "Cyclist": "bicycle", "Tram": "train"}
    for layer in (15, 22):
        for name in (f"module_list.{layer}.conv.weight", f"module_list.{layer}.conv.bias"):
            ours, theirs, init = net.state_dict()[name], coco.state_dict()[name], seeded[name]
            for anchor in range(3):
                assert torch.equal(ours[anchor * 13:anchor * 13 + 5], theirs[anchor * 85:anchor * 85 + 5])
                for c, kitti in enumerate(cfg.classes):
                    row = ours[anchor * 13 + 5 + c]
                    if kitti in kitti_from:
                        assert torch.equal(row, theirs[anchor * 85 + 5 + coco_row[kitti_from[kitti]]]), kitti
                    else:
                        assert torch.equal(row, init[anchor * 13 + 5 + c]), kitti


def test_head_init_without_weights_of_another_class_list_is_an_error(tmp_path):
    no_weights = run_python("train.py", "--config", str(REPO / "cfg" / "kitti-mini.yaml"), "--project",
                            str(tmp_path), check=False)
    assert no_weights.returncode == 1 and "error: head_init coco-kitti maps the head rows of --weights" in no_weights.stderr
    assert "Traceback" not in no_weights.stderr

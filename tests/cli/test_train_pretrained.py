"""cfg/tiny-pretrained.yaml with --weights yolov3-tiny.weights: darknet's 80-class COCO model starts the 8-class
KITTI YOLOv3-tiny, every layer but the heads (skipped without ../shared)."""
import torch

import train
from models.darknet import Darknet
from models.weights import load_darknet_weights
from tests.conftest import REPO, shared_path
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

"""models/build.py: darknet's initialisation, anchors scaled to the input size, and loading a state of this repo
with a different class count."""
import math

import pytest
import torch

from models.build import build_model, init_darknet_, load_model_state
from models.darknet import Darknet
from tests.conftest import REPO

SMALL = str(REPO / "cfg" / "yolov3-small-kitti.cfg")


def test_darknet_init_is_he_normal_with_zero_biases():
    torch.manual_seed(0)
    model = Darknet(SMALL, num_classes=8)
    init_darknet_(model)
    conv = model.module_list[5].conv  # 3x3, 32 -> 64 channels: fan_in 288, 18432 weights
    assert conv.weight.shape == (64, 32, 3, 3)
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / 288), rel=0.03)
    assert abs(conv.weight.mean().item()) < 0.01
    head = model.module_list[model.head_conv_layers[0]].conv
    assert head.bias is not None and torch.count_nonzero(head.bias) == 0
    pytorch_std = Darknet(SMALL, num_classes=8).module_list[5].conv.weight.std().item()
    assert pytorch_std == pytest.approx(math.sqrt(2 / 288) / math.sqrt(6), rel=0.05)  # 2.45x smaller


def test_init_is_seeded_and_selectable():
    def weights(init):
        torch.manual_seed(7)
        return build_model(SMALL, 8, "deterministic", torch.device("cpu"), init=init).state_dict()
    a, b, c = weights("darknet"), weights("darknet"), weights("pytorch")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["module_list.0.conv.weight"], c["module_list.0.conv.weight"])
    with pytest.raises(ValueError, match="init"):
        build_model(SMALL, 8, "deterministic", torch.device("cpu"), init="xavier")


def test_anchors_follow_the_input_size():
    """yolov3-kitti.cfg gives anchors in pixels at 1248x384; at 640x192 they scale by 640/1248 and 192/384."""
    cfg = str(REPO / "cfg" / "yolov3-kitti.cfg")
    full, half = Darknet(cfg), Darknet(cfg, input_size=(640, 192))
    assert half.input_size == (640, 192) and half.cfg_size == (1248, 384)
    for a, b in zip(full.heads, half.heads):
        scaled = [v for w, h in a.anchors for v in (w * 640 / 1248, h * 192 / 384)]
        assert scaled == pytest.approx([v for pair in b.anchors for v in pair])
        assert b.stride == a.stride
    assert Darknet(cfg, input_size=(1248, 384)).heads == full.heads


def test_state_of_another_class_count_loads_all_but_the_heads():
    torch.manual_seed(1)
    source = build_model(SMALL, 3, "deterministic", torch.device("cpu"))
    target = build_model(SMALL, 8, "deterministic", torch.device("cpu"))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    message = load_model_state(target, source.state_dict(), "best.pt")
    heads = {f"module_list.{i}" for i in target.head_conv_layers}
    for key, value in target.state_dict().items():
        expected = before[key] if key.rsplit(".", 2)[0] in heads else source.state_dict()[key]
        assert torch.equal(value, expected), key
    assert "head layers 19, 27, 35 (another class count) left at init" in message


def test_state_of_another_architecture_is_refused_with_keys():
    tiny = Darknet(str(REPO / "cfg" / "yolov3-tiny-kitti.cfg"), num_classes=8)
    with pytest.raises(ValueError, match=r"other.pt: weights do not fit .*yolov3-small-kitti.cfg"):
        load_model_state(Darknet(SMALL, num_classes=8), tiny.state_dict(), "other.pt")

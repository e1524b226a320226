"""models/cfg.py and models/darknet.py: cfg parsing, building upstream and repo cfgs, head metadata, and file:line
errors."""
from pathlib import Path

import pytest
import torch

from models.cfg import parse_cfg
from models.darknet import Darknet
from models.layers import ConvBNAct, Route, Shortcut, Upsample
from tests.conftest import REPO

REPO_CFG = REPO / "cfg"
KITTI_CFGS = {"yolov3-kitti.cfg": (1248, 384), "yolov3-tiny-kitti.cfg": (1248, 384),
              "yolov3-small-kitti.cfg": (416, 128)}  # (width, height)
# Blocks after [net], [yolo] heads and trainable parameters, from darknet_cfg/SOURCE.md.
UPSTREAM = {"yolov3.cfg": (107, 3, 61_949_149), "yolov3-tiny.cfg": (24, 2, 8_852_366),
            "yolov3-spp.cfg": (114, 3, 62_998_749), "yolov3-voc.cfg": (107, 3, 61_626_049)}

NET = "[net]\nwidth=64\nheight=32\n"
HEAD = "[convolutional]\nfilters=6\nsize=1\nactivation=linear\n\n[yolo]\nmask=0\nanchors=4,5, 8,9\nclasses=1\nnum=2\n"


def build_meta(path, **kwargs) -> Darknet:
    """Build without allocating or initialising weights: cheap for the 60M-parameter cfgs."""
    with torch.device("meta"):
        return Darknet(path, **kwargs)


def n_params(model: Darknet) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def write_cfg(tmp_path, text: str) -> Path:
    path = tmp_path / "x.cfg"
    path.write_text(text)
    return path


def test_parse_cfg_types_comments_and_line_numbers(tmp_path):
    path = write_cfg(tmp_path, "# header\n[net]\nwidth = 64 ; trailing comment\nheight=32\nsteps=1, 2\n"
                               "scales=.1,.1\npolicy=steps\n\n[route]\nlayers = -1,  61  # two layers\n\n"
                               "[yolo]\nanchors = 10,13,  16,30\nignore_thresh=.7\n[route]\nlayers=-2\n")
    net, route, yolo, route2 = parse_cfg(path)
    assert net.options == {"width": 64, "height": 32, "steps": (1, 2), "scales": (0.1, 0.1), "policy": "steps"}
    assert (net.line, net.key_lines["width"], route.line, route.key_lines["layers"]) == (2, 3, 9, 10)
    assert route.options["layers"] == (-1, 61) and route2.options["layers"] == (-2,)
    assert yolo.options == {"anchors": (10.0, 13.0, 16.0, 30.0), "ignore_thresh": 0.7}
    assert [b.type for b in (net, route, yolo, route2)] == ["net", "route", "yolo", "route"]


@pytest.mark.parametrize("name", UPSTREAM)
def test_upstream_cfg_layers_heads_and_params(darknet_cfg_dir, name):
    layers, heads, params = UPSTREAM[name]
    model = build_meta(darknet_cfg_dir / name)
    assert (len(model.module_list), len(model.heads), n_params(model)) == (layers, heads, params)


def test_yolov3_heads_at_416(darknet_cfg_dir):
    """Shapes via a meta-device forward (a CPU forward of yolov3 takes seconds); numerics are covered below."""
    model = build_meta(darknet_cfg_dir / "yolov3.cfg")
    outputs = model(torch.empty(2, 3, 416, 416, device="meta"))
    assert [tuple(o.shape) for o in outputs] == [(2, 255, 13, 13), (2, 255, 26, 26), (2, 255, 52, 52)]
    assert [h.stride for h in model.heads] == [32, 16, 8]
    assert model.heads[0].anchors == ((116, 90), (156, 198), (373, 326)) and model.heads[0].mask == (6, 7, 8)
    assert len(model.heads[2].all_anchors) == 9 and model.heads[2].ignore_thresh == 0.7
    assert model.num_classes == 80 and model.input_size == (608, 608)
    assert model.net_options["max_batches"] == 500200 and model.net_options["steps"] == (400000, 450000)


def test_num_classes_override_sets_head_filters(darknet_cfg_dir):
    model = build_meta(darknet_cfg_dir / "yolov3.cfg", num_classes=8)
    assert [model.module_list[i].conv.out_channels for i in (81, 93, 105)] == [39, 39, 39]
    assert model.num_classes == 8 and all(h.num_classes == 8 for h in model.heads)
    assert n_params(model) == 61_949_149 - (255 - 39) * (1024 + 512 + 256 + 3)  # + 1 bias per filter


@pytest.mark.parametrize("name,upstream,params", [("yolov3-kitti.cfg", "yolov3", 61_949_149),
                                                  ("yolov3-tiny-kitti.cfg", "yolov3-tiny", 8_852_366)])
def test_repo_cfg_has_upstream_topology(name, upstream, params):
    assert n_params(build_meta(REPO_CFG / name, num_classes=80)) == params


@pytest.mark.parametrize("name", KITTI_CFGS)
def test_repo_cfg_heads(name):
    """8 classes; anchors grow with stride; input size as documented in the cfg header."""
    model = build_meta(REPO_CFG / name)
    w, h = KITTI_CFGS[name]
    outputs = model(torch.empty(1, 3, h, w, device="meta"))
    assert model.input_size == (w, h) and model.num_classes == 8
    assert [tuple(o.shape) for o in outputs] == [(1, 39, h // s.stride, w // s.stride) for s in model.heads]
    areas = [a * b for head in reversed(model.heads) for a, b in head.anchors]
    assert areas == sorted(areas)


def test_small_cfg_forward_backward():
    """The CPU-training config runs for real, uses every layer kind, and stays small."""
    torch.manual_seed(0)
    model = Darknet(REPO_CFG / "yolov3-small-kitti.cfg")
    outputs = model(torch.randn(2, 3, 128, 416))
    sum(o.square().mean() for o in outputs).backward()
    assert [tuple(o.shape) for o in outputs] == [(2, 39, 4, 13), (2, 39, 8, 26), (2, 39, 16, 52)]
    assert [h.stride for h in model.heads] == [32, 16, 8]
    assert {type(m) for m in model.module_list} == {ConvBNAct, Shortcut, Route, Upsample, torch.nn.Identity}
    assert 300_000 < n_params(model) < 1_500_000


def test_init_is_seeded_and_upsample_kinds_agree():
    """Same seed -> same weights; the deterministic and stock upsample give bitwise equal outputs."""
    models = []
    for upsample in ("deterministic", "interpolate"):
        with torch.random.fork_rng():
            torch.manual_seed(3)
            models.append(Darknet(REPO_CFG / "yolov3-small-kitti.cfg", upsample=upsample).eval())
    a, b = (m.state_dict() for m in models)
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randn(1, 3, 128, 416, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert all(torch.equal(p, q) for p, q in zip(models[0](x), models[1](x)))
    assert "upsample: deterministic (expand+reshape)" in models[0].summary()
    assert "upsample: F.interpolate nearest" in models[1].summary()


def test_tiny_maxpool_stride_1_keeps_size():
    model = Darknet(REPO_CFG / "yolov3-tiny-kitti.cfg").eval()
    pool = model.module_list[11]
    seen = []
    pool.register_forward_hook(lambda _, inputs, output: seen.append((inputs[0].shape, output.shape)))
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 384, 1248))
    assert seen[0][0] == seen[0][1] == (1, 512, 12, 39)
    assert [tuple(o.shape) for o in outputs] == [(1, 39, 12, 39), (1, 39, 24, 78)]


def test_summary_lists_layers_and_params():
    model = build_meta(REPO_CFG / "yolov3-tiny-kitti.cfg")
    text = model.summary()
    assert "  11  maxpool           512     32  2x2/1" in text
    assert f"trainable parameters: {n_params(model):,}" in text


def test_forward_rejects_bad_input_size():
    model = build_meta(REPO_CFG / "yolov3-small-kitti.cfg")
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.empty(1, 3, 100, 416, device="meta"))


BAD_CFGS = {
    "unknown block": (NET + "[convolutinal]\nfilters=8\n", 4, "'[convolutinal]'"),
    "unknown key": (NET + "[convolutional]\nfliters=8\n", 5, "unknown key 'fliters' in [convolutional]"),
    "malformed": (NET + "[convolutional]\nfilters 8\n", 5, "'filters 8'"),
    "key before section": ("width=3\n" + NET, 1, "'width=3'"),
    "wrong type": (NET + "[convolutional]\nsize=3.5\n", 5, "size = '3.5'"),
    "bad list": (NET + "[route]\nlayers=-1,,2\n", 5, "layers = '-1,,2'"),
    "bad activation": (NET + "[convolutional]\nactivation=swish\n", 5, "activation = 'swish'"),
    "duplicate key": (NET + "[convolutional]\nsize=1\nsize=3\n", 6, "duplicate key 'size'"),
    "no net": ("[convolutional]\nsize=1\n", 1, "[net]"),
    "route": (NET + "[convolutional]\nfilters=1\n\n[route]\nlayers=-1, 7\n", 8, "layers = -1, 7: layer 7"),
    "shortcut": (NET + "[convolutional]\nfilters=1\n\n[shortcut]\nfrom=-3\n", 8, "from = -3: layer -2"),
    "no filters": (NET + "[convolutional]\nsize=3\n", 4, "missing the required key 'filters'"),
    "shortcut channels": (NET + "[convolutional]\nfilters=4\n[convolutional]\nfilters=8\n[shortcut]\nfrom=-2\n",
                          9, "from = -2: layer 0 has 4 channels"),
    "missing key": (NET + "[shortcut]\n", 4, "missing the required key 'from'"),
    "second net": (NET + "[net]\nwidth=3\n", 4, "exactly one [net] section"),
    "classes differ": (NET + HEAD + HEAD.replace("classes=1", "classes=2").replace("filters=6", "filters=7"),
                       None, "found classes [1, 2]"),
    "bad mask": (NET + HEAD.replace("mask=0", "mask=2"), 10, "mask = 2: indices must lie in 0..1"),
    "truth_thresh": (NET + HEAD.replace("mask=0", "mask=0\ntruth_thresh=0.7"), 11, "not implemented"),
    "head filters": (NET + HEAD.replace("filters=6", "filters=12"), 9, "expected len(mask) * (5 + classes) = 6"),
}


@pytest.mark.parametrize("case", BAD_CFGS)
def test_errors_name_file_line_and_text(tmp_path, case):
    text, line, fragment = BAD_CFGS[case]
    path = write_cfg(tmp_path, text)
    with pytest.raises(ValueError) as info:
        Darknet(path)
    where = f"{path}:{line}:" if line else f"{path}:"
    assert where in str(info.value) and fragment in str(info.value)


def test_minimal_cfg_with_override(tmp_path):
    path = write_cfg(tmp_path, NET + HEAD)
    model = Darknet(path, num_classes=4)
    assert model.module_list[0].conv.out_channels == 9
    assert model.heads[0].anchors == ((4.0, 5.0),) and model.heads[0].stride == 1

"""darknet's own COCO YOLOv3-tiny weights: what a round trip of self-written weights cannot show.

A writer and a reader that share a bug (a swapped BN field, a transposed kernel, a head permuted per anchor) pass
every round trip. These tests load the trained weights darknet published and compare what the network computes with
an independent darknet implementation, OpenCV's importer (``cv2.dnn.readNetFromDarknet``), on the same input blob
of each real KITTI frame. Largest difference measured over the six frames at 416x416 and 832x256 (torch 2.14.1,
OpenCV 4.14.0, CPU): 9.5e-5 (a box coordinate, in fractions of the input); objectness and class scores 8.9e-5.
The tolerance is 1e-3: every bug of ``test_a_real_bug_breaks_the_tolerance`` moves some output by more than 0.18.

Skipped without ../shared (a user's clone has none).
"""
from __future__ import annotations

import copy
import hashlib

import cv2
import numpy as np
import pytest
import torch

from models.darknet import Darknet
from models.head import decode
from models.weights import (
    WeightsHeader,
    fit_file,
    load_darknet_weights,
    save_darknet_weights,
)
from tests.conftest import shared_path

SHA256 = "dccea06f59b781ec1234ddf8d1e94b9519a97f4245748a7d4db75d5b7080a42c"  # darknet's published checksum
FRAMES = [f"{i:06d}" for i in range(6)]
SIZES = [(416, 416), (832, 256)]  # the cfg's own size, and KITTI's aspect (anchors stay in input pixels)
TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def files():
    return {"cfg": shared_path("darknet_cfg", "yolov3-tiny.cfg"),
            "weights": shared_path("darknet_weights", "yolov3-tiny.weights"),
            "images": shared_path("kitti_sample", "training", "image_2")}


@pytest.fixture(scope="module")
def model(files) -> Darknet:
    net = Darknet(files["cfg"]).eval()
    load_darknet_weights(net, files["weights"])
    return net


@pytest.fixture(scope="module")
def opencv(files, tmp_path_factory):
    """OpenCV's darknet network. Its [yolo] layer zeroes class scores below ``thresh`` (default 0.2), an OpenCV key
    our parser rightly refuses: OpenCV reads a copy of the cfg with ``thresh = 0``, so every score is compared."""
    cfg = tmp_path_factory.mktemp("opencv") / "yolov3-tiny.cfg"
    cfg.write_text(files["cfg"].read_text().replace("[yolo]", "[yolo]\nthresh = 0"))
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(files["weights"]))

    def forward(blob: np.ndarray) -> list[np.ndarray]:
        net.setInput(blob)
        return list(net.forward(net.getUnconnectedOutLayersNames()))
    return forward


def blob_of(files, frame: str, size) -> np.ndarray:
    """(1, 3, H, W) float32 RGB in [0, 1], stretched to ``size`` = (W, H): the same input for both networks."""
    image = cv2.imread(str(files["images"] / f"{frame}.png"))
    return cv2.dnn.blobFromImage(image, 1 / 255.0, size, swapRB=True, crop=False)


def as_opencv_rows(net: Darknet, blob: np.ndarray) -> list[np.ndarray]:
    """Our decoded heads in OpenCV's layout: per head ``(H*W*A, 5 + C)`` rows ordered by cell y, cell x, anchor;
    columns cx, cy, w, h as fractions of the input size, objectness, class probability x objectness."""
    with torch.no_grad():
        raw = net(torch.from_numpy(blob))
    height, width = blob.shape[2:]
    out = []
    for head_out, head in zip(raw, net.heads):
        a, (h, w) = len(head.anchors), head_out.shape[2:]
        d = decode([head_out], [head])[0].view(a, h, w, -1).permute(1, 2, 0, 3).reshape(h * w * a, -1).numpy()
        box = np.stack([(d[:, 0] + d[:, 2]) / 2 / width, (d[:, 1] + d[:, 3]) / 2 / height,
                        (d[:, 2] - d[:, 0]) / width, (d[:, 3] - d[:, 1]) / height], axis=1)
        out.append(np.concatenate([box, d[:, 4:5], d[:, 4:5] * d[:, 5:]], axis=1))
    return out


def largest_difference(ours: list[np.ndarray], theirs: list[np.ndarray]) -> float:
    """Largest absolute difference over every head and value; NaN anywhere counts as infinite."""
    assert [o.shape for o in ours] == [t.shape for t in theirs]
    diffs = [np.abs(o - t) for o, t in zip(ours, theirs)]
    return max(float(np.nan_to_num(d, nan=np.inf).max()) for d in diffs)


def test_the_fixture_is_darknets_published_file(files):
    assert hashlib.sha256(files["weights"].read_bytes()).hexdigest() == SHA256


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("frame", FRAMES)
def test_every_head_output_equals_opencvs_darknet(files, model, opencv, frame, size):
    blob = blob_of(files, frame, size)
    theirs = opencv(blob)
    assert [len(t) for t in theirs] == [size[0] * size[1] // s**2 * 3 for s in (32, 16)]
    assert largest_difference(as_opencv_rows(model, blob), theirs) < TOLERANCE


def _swap_bn_fields(net: Darknet, a: str, b: str) -> None:
    for layer in net.module_list:
        if hasattr(layer, "bn"):
            first, second = getattr(layer.bn, a).clone(), getattr(layer.bn, b).clone()
            getattr(layer.bn, a).copy_(second)
            getattr(layer.bn, b).copy_(first)


def _transpose_kernels(net: Darknet) -> None:
    for layer in net.module_list:
        if hasattr(layer, "conv") and layer.conv.kernel_size[0] > 1:
            layer.conv.weight.copy_(layer.conv.weight.transpose(2, 3).clone())


def _permute_head_anchors(net: Darknet) -> None:
    for i, head in zip(net.head_conv_layers, net.heads):
        conv, a = net.module_list[i].conv, len(head.anchors)
        conv.weight.copy_(conv.weight.view(a, -1, *conv.weight.shape[1:]).roll(1, 0).reshape(conv.weight.shape))
        conv.bias.copy_(conv.bias.view(a, -1).roll(1, 0).reshape(-1))


def _pad_maxpool_before(net: Darknet) -> None:
    net.module_list[11].pad = (1, 0, 1, 0)  # the size-2 stride-1 pool: darknet pads right and bottom


BUGS = {"bn gamma and beta swapped": lambda n: _swap_bn_fields(n, "weight", "bias"),
        "bn mean and variance swapped": lambda n: _swap_bn_fields(n, "running_mean", "running_var"),
        "kernels transposed": _transpose_kernels,
        "head permuted per anchor": _permute_head_anchors,
        "maxpool padded left/top": _pad_maxpool_before}


@pytest.mark.parametrize("bug", BUGS)
def test_a_real_bug_breaks_the_tolerance(files, model, opencv, bug):
    """The comparison is worth its tolerance: each bug a loader or builder could have moves an output by > 0.1."""
    broken = copy.deepcopy(model)
    with torch.no_grad():
        BUGS[bug](broken)
    blob = blob_of(files, "000003", SIZES[0])
    assert largest_difference(as_opencv_rows(broken, blob), opencv(blob)) > 100 * TOLERANCE


def test_rgb_order_matters(files, model, opencv):
    """Feeding BGR (OpenCV's decode order) instead of darknet's RGB is caught as well."""
    blob = blob_of(files, "000003", SIZES[0])
    assert largest_difference(as_opencv_rows(model, np.ascontiguousarray(blob[:, ::-1])), opencv(blob)) > 0.1


def test_saving_the_loaded_model_gives_back_the_file_byte_for_byte(files, tmp_path):
    net = Darknet(files["cfg"])
    header = load_darknet_weights(net, files["weights"])
    assert header == WeightsHeader(0, 2, 0, 32013312)
    save_darknet_weights(net, tmp_path / "again.weights", header=header)
    assert (tmp_path / "again.weights").read_bytes() == files["weights"].read_bytes()


# Floats of layers 0-14 of yolov3-tiny.cfg, by hand from the cfg: filters * (in * k * k + 4 BN values) per conv.
CONV15_FLOATS = sum(f * (c * k * k + 4) for f, c, k in [(16, 3, 3), (32, 16, 3), (64, 32, 3), (128, 64, 3),
                                                        (256, 128, 3), (512, 256, 3), (1024, 512, 3),
                                                        (256, 1024, 1), (512, 256, 3)])


def test_conv15_prefix_equals_the_same_layers_of_the_full_load(files, model, tmp_path):
    """``darknet partial yolov3-tiny.cfg yolov3-tiny.weights yolov3-tiny.conv.15 15`` writes a 0.2.0 header with
    ``seen`` 0 and the values of layers 0-14: made here from the file's bytes, not with our writer."""
    assert CONV15_FLOATS == 7_743_344
    floats = files["weights"].read_bytes()[20:20 + 4 * CONV15_FLOATS]
    (tmp_path / "yolov3-tiny.conv.15").write_bytes(np.array([0, 2, 0], "<i4").tobytes()
                                                   + np.array([0], "<i8").tobytes() + floats)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        fresh = Darknet(files["cfg"])
    untouched = copy.deepcopy(fresh.state_dict())
    assert fit_file(fresh, tmp_path / "yolov3-tiny.conv.15") == (15, 80)
    load_darknet_weights(fresh, tmp_path / "yolov3-tiny.conv.15", cutoff=15)
    full = model.state_dict()
    for key, value in fresh.state_dict().items():
        expected = full[key] if int(key.split(".")[1]) < 15 else untouched[key]
        assert torch.equal(value, expected), key

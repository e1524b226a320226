"""models/weights.py: darknet .weights round trips, cutoff, header versions, and size/header errors."""
from pathlib import Path

import numpy as np
import pytest
import torch

from models.darknet import Darknet
from models.weights import (
    WeightsHeader,
    _tensors,
    fit_file,
    load_darknet_weights,
    save_darknet_weights,
)
from tests.conftest import REPO

REPO_CFG = REPO / "cfg"
UPSTREAM = ["yolov3.cfg", "yolov3-tiny.cfg", "yolov3-spp.cfg", "yolov3-voc.cfg"]


def build(cfg: Path, seed: int) -> Darknet:
    """A model whose weights and BN running statistics all depend on ``seed`` (the global RNG is left as found)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = Darknet(cfg)
    generator = torch.Generator().manual_seed(seed)
    for name, buffer in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
    return model


def assert_same_state(a: Darknet, b: Darknet) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("name", sorted(p.name for p in REPO_CFG.glob("*.cfg")))
def test_round_trip_repo_cfgs(tmp_path, name):
    source, target = build(REPO_CFG / name, 1), build(REPO_CFG / name, 2)
    save_darknet_weights(source, tmp_path / "w.weights", header=WeightsHeader(0, 2, 0, 1234))
    header = load_darknet_weights(target, tmp_path / "w.weights")
    assert_same_state(source, target)
    assert (header.major, header.minor, header.revision, header.seen) == (0, 2, 0, 1234)
    assert [p.name for p in tmp_path.iterdir()] == ["w.weights"]  # no temporary file left behind


@pytest.mark.parametrize("name", UPSTREAM)
def test_round_trip_upstream_cfgs(tmp_path, darknet_cfg_dir, name):
    source, target = build(darknet_cfg_dir / name, 1), build(darknet_cfg_dir / name, 2)
    path = tmp_path / "w.weights"
    save_darknet_weights(source, path)
    n_floats = sum(t.numel() for k, t in source.state_dict().items() if not k.endswith("num_batches_tracked"))
    assert path.stat().st_size == 20 + 4 * n_floats  # every float stored once, nothing else
    load_darknet_weights(target, path)
    assert_same_state(source, target)


def test_cutoff_round_trip(tmp_path):
    """Like darknet53.conv.74: only layers [0, cutoff) are stored and loaded; later layers keep their values."""
    cfg = REPO_CFG / "yolov3-small-kitti.cfg"
    source, target, untouched = build(cfg, 1), build(cfg, 2), build(cfg, 2)
    save_darknet_weights(source, tmp_path / "w.weights", cutoff=17)
    load_darknet_weights(target, tmp_path / "w.weights", cutoff=17)
    for key, value in target.state_dict().items():
        layer = int(key.split(".")[1])
        expected = (source if layer < 17 else untouched).state_dict()[key]
        assert torch.equal(value, expected), key
    with pytest.raises(ValueError, match="for all layers, found"):
        load_darknet_weights(target, tmp_path / "w.weights")


def test_old_header_with_int32_seen(tmp_path):
    """Version 0.1: ``seen`` is an int32, so the floats start at byte 16."""
    cfg = REPO_CFG / "yolov3-small-kitti.cfg"
    source, target = build(cfg, 1), build(cfg, 2)
    save_darknet_weights(source, tmp_path / "new.weights")
    floats = (tmp_path / "new.weights").read_bytes()[20:]
    (tmp_path / "old.weights").write_bytes(np.array([0, 1, 0, 77], "<i4").tobytes() + floats)
    header = load_darknet_weights(target, tmp_path / "old.weights")
    assert header.seen == 77 and (header.major, header.minor) == (0, 1)
    assert_same_state(source, target)


@pytest.fixture
def small_weights(tmp_path) -> tuple[Darknet, Path]:
    model = build(REPO_CFG / "yolov3-small-kitti.cfg", 1)
    save_darknet_weights(model, tmp_path / "w.weights")
    return model, tmp_path / "w.weights"


@pytest.mark.parametrize("change,found", [(-4, -1), (8, 2), (2, 0)])
def test_wrong_length_names_counts_and_file(small_weights, change, found):
    model, path = small_weights
    data = path.read_bytes()
    path.write_bytes(data[:change] if change < 0 else data + bytes(change))
    expected = (len(data) - 20) // 4
    with pytest.raises(ValueError) as info:
        load_darknet_weights(model, path)
    message = str(info.value)
    assert str(path) in message and f"expected {expected:,} float32" in message
    assert f"found {expected + found:,}" in message
    assert ("stray bytes" in message) == (change == 2)


@pytest.mark.parametrize("header,fragment", [(np.array([0, 2], "<i4"), "bad header: file has 8 bytes"),
                                             (np.array([5000, 2, 0, 0, 0], "<i4"), "nonsense version 5000.2.0"),
                                             (np.array([0, 2, 0, 0], "<i4"), "needs 20 header bytes")])
def test_bad_header_is_named(small_weights, header, fragment):
    model, path = small_weights
    path.write_bytes(header.tobytes())
    with pytest.raises(ValueError, match=fragment):
        load_darknet_weights(model, path)


def test_bad_cutoff(small_weights):
    model, path = small_weights
    with pytest.raises(ValueError, match="cutoff must lie in 0..37"):
        save_darknet_weights(model, path, cutoff=38)


def test_fit_file_reads_the_prefix_length_from_the_file_size(tmp_path):
    """A backbone prefix (as darknet53.conv.74 is of yolov3): the file size gives how many layers it holds."""
    model = build(REPO_CFG / "yolov3-small-kitti.cfg", 1)
    save_darknet_weights(model, tmp_path / "backbone.weights", cutoff=17)
    target = build(REPO_CFG / "yolov3-small-kitti.cfg", 2)
    cutoff, classes = fit_file(target, tmp_path / "backbone.weights")
    assert classes == 8
    assert cutoff >= 17 and sum(t.numel() for t in _tensors(model, cutoff)) == sum(
        t.numel() for t in _tensors(model, 17))  # layers without weights after 16 do not change the count
    load_darknet_weights(target, tmp_path / "backbone.weights", cutoff)
    a, b = model.state_dict(), target.state_dict()
    early = [k for k in a if int(k.split(".")[1]) < 17]
    assert early and all(torch.equal(a[k], b[k]) for k in early)
    assert not torch.equal(a["module_list.35.conv.weight"], b["module_list.35.conv.weight"])  # a head: not loaded


def test_a_file_that_fits_no_prefix_names_both_sizes(tmp_path):
    model = build(REPO_CFG / "yolov3-small-kitti.cfg", 1)
    save_darknet_weights(model, tmp_path / "w.weights")
    path = tmp_path / "w.weights"
    path.write_bytes(path.read_bytes() + bytes(4 * 7))  # 7 floats too many
    total = sum(t.numel() for t in _tensors(model, None))
    with pytest.raises(ValueError, match=rf"{total + 7:,} float32 values after the header fit no prefix.*"
                                         rf"whole model needs {total:,}"):
        fit_file(model, path)


def test_old_header_is_written_back_as_read(tmp_path):
    """Version 0.1 (int32 ``seen``) saved with the header it was loaded with comes back byte for byte."""
    model = build(REPO_CFG / "yolov3-small-kitti.cfg", 1)
    save_darknet_weights(model, tmp_path / "old.weights", header=WeightsHeader(0, 1, 0, 77))
    data = (tmp_path / "old.weights").read_bytes()
    assert data[:16] == np.array([0, 1, 0, 77], "<i4").tobytes()
    header = load_darknet_weights(model, tmp_path / "old.weights")
    save_darknet_weights(model, tmp_path / "again.weights", header=header)
    assert (tmp_path / "again.weights").read_bytes() == data


@pytest.mark.parametrize("file_classes", [80, 1, 20])
def test_fit_file_finds_another_class_count_of_the_whole_model(tmp_path, file_classes):
    """A whole model of the same cfg trained on another class list (COCO's 80 for an 8-class KITTI cfg): the size
    differs only in the head convolutions, by len(mask) * (in * k * k + 1) floats per class each."""
    cfg = REPO_CFG / "yolov3-tiny-kitti.cfg"
    with torch.random.fork_rng():
        save_darknet_weights(Darknet(cfg, num_classes=file_classes), tmp_path / "w.weights")
    assert fit_file(Darknet(cfg), tmp_path / "w.weights") == (24, file_classes)
    # 39 filters of 512 * 1 * 1 + 1 floats (layer 15) and of 256 + 1 (layer 22): 3 * (513 + 257) floats per class
    size = (tmp_path / "w.weights").stat().st_size
    (tmp_path / "w.weights").write_bytes((tmp_path / "w.weights").read_bytes()[:size - 4 * 3 * (513 + 257) // 2])
    with pytest.raises(ValueError, match="fit no prefix .* and no class count"):
        fit_file(Darknet(cfg), tmp_path / "w.weights")

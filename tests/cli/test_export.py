"""export.py: a checkpoint of the tiny CI config leaves as darknet files that OpenCV's darknet importer runs, and as
an ONNX model that onnxruntime runs, both computing what the repo's model computes on the real KITTI frames.

Real-frame tests skip without ../shared, the ONNX ones without onnxruntime (requirements-export.txt).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data.transforms import letterbox
from models.darknet import Darknet
from models.head import MAX_LOG_SCALE, decode, split_head
from models.export import Decoded, darknet_bn, darknet_cfg, largest_difference, onnx_bytes
from models.weights import load_darknet_weights, save_darknet_weights
from tests.conftest import REPO, run_python, shared_path
from tests.faults.conftest import assert_one_error_line
from training import checkpoint
from training.config import from_dict
from utils.errors import UserError

FRAMES = [f"{i:06d}" for i in range(6)]
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """best.pt of one epoch of cfg/ci-tiny.yaml (yolov3-small-kitti.cfg, 8 classes, input 256x96)."""
    project = tmp_path_factory.mktemp("export")
    run_python("train.py", "--config", str(REPO / "cfg" / "ci-tiny.yaml"), "--epochs", "1", "--burn-in-images", "4",
               "--threads", "1", "--project", str(project), "--name", "r")
    return project / "r" / "best.pt"


def repo_model(best: Path) -> tuple[Darknet, tuple[int, int], tuple[str, ...]]:
    """The checkpoint's model (eval mode), its input size (W, H) and classes, built here in the test process."""
    ckpt = checkpoint.load(best)
    cfg = from_dict(ckpt["config"])
    net = Darknet(REPO / cfg.model, len(cfg.classes), input_size=tuple(cfg.img_size))
    net.load_state_dict(ckpt["model"])
    return net.eval(), tuple(cfg.img_size), tuple(cfg.classes)


@pytest.fixture(scope="module")
def darknet_files(trained, tmp_path_factory) -> Path:
    """``export.py --format darknet --out DIR/kitti``: DIR/kitti.cfg, .weights, .names."""
    folder = tmp_path_factory.mktemp("darknet")
    run_python("export.py", "--weights", str(trained), "--format", "darknet", "--out", str(folder / "kitti"))
    return folder


@pytest.fixture(scope="module")
def images() -> dict[str, np.ndarray]:
    folder = shared_path("kitti_sample", "training", "image_2")
    return {frame: cv2.imread(str(folder / f"{frame}.png")) for frame in FRAMES}


def opencv_net(net: Darknet, cfg: Path, weights: Path, tmp: Path):
    """OpenCV's darknet network of the files: blob -> (the raw head outputs, the decoded outputs) as (1, K, 5 + C)
    arrays, in models.head.decode's layout.

    Its [yolo] layer zeroes class scores below ``thresh`` (an OpenCV key, 0.2 by default): it reads a copy of the cfg
    with ``thresh = 0``, so every score is compared. OpenCV names the convolution feeding [yolo] block i
    ``conv_{i-1}``."""
    copy = tmp / f"opencv-{cfg.name}"
    copy.write_text(cfg.read_text().replace("[yolo]", "[yolo]\nthresh = 0"))
    opencv = cv2.dnn.readNetFromDarknet(str(copy), str(weights))
    yolo = list(opencv.getUnconnectedOutLayersNames())
    names = [f"conv_{i}" for i in net.head_conv_layers] + yolo

    def forward(blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        opencv.setInput(blob)
        outputs = opencv.forward(names)
        raw, rows = outputs[:len(yolo)], outputs[len(yolo):]
        decoded = [opencv_rows_as_decoded(r, head, blob.shape[3], blob.shape[2], c.shape[2:])
                   for r, head, c in zip(rows, net.heads, raw)]
        return np.concatenate([r.ravel() for r in raw]), np.concatenate(decoded)[None]
    return forward


def opencv_rows_as_decoded(rows: np.ndarray, head, width: int, height: int, grid) -> np.ndarray:
    """OpenCV's [yolo] rows ``(H*W*A, 5 + C)`` (cell y, cell x, anchor order; cx, cy, w, h in fractions of the input,
    objectness, class probability x objectness) -> ``(A*H*W, 5 + C)`` in decode's order: xyxy input pixels,
    objectness, class probability x objectness."""
    a = len(head.anchors)
    rows = rows.reshape(*grid, a, -1).transpose(2, 0, 1, 3).reshape(a * grid[0] * grid[1], -1).astype(np.float64)
    cx, cy, w, h = rows[:, 0] * width, rows[:, 1] * height, rows[:, 2] * width, rows[:, 3] * height
    return np.concatenate([np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1), rows[:, 4:]], axis=1)


def repo_outputs(net: Darknet, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The repo model's raw head outputs (flat), its decoded outputs with class probabilities times objectness (as
    darknet reports them), and which candidates the decode's exp clamp touched (darknet has none)."""
    with torch.no_grad():
        raw = net(torch.from_numpy(blob))
        decoded = decode(raw, net.heads)[0].numpy()
    decoded[:, 5:] *= decoded[:, 4:5]
    clamped = torch.cat([split_head(r, len(h.anchors))[..., 2:4].amax(-1).flatten(1) for r, h in zip(raw, net.heads)],
                        dim=1)[0] > MAX_LOG_SCALE
    return torch.cat([r.flatten() for r in raw]).numpy(), decoded[None], clamped.numpy()


def raw_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest difference of raw head outputs, each counted in its own size when beyond 1 (a one-epoch head's
    logits reach 36, where fp32 steps are 4e-6)."""
    return float((np.abs(ours - theirs) / np.maximum(1, np.abs(ours))).max())


def test_darknet_export_runs_in_opencv_as_the_repo_model_does(trained, darknet_files, images, tmp_path):
    """On the six frames: the head outputs within 1e-4, and the decoded boxes and scores within 1e-4 (boxes in input
    sizes) wherever the decode's exp clamp, which darknet lacks, is not at work. Measured (torch 2.14.1, OpenCV
    4.14.0, CPU): 2.5e-5 and 2.3e-5."""
    net, size, classes = repo_model(trained)
    assert (darknet_files / "kitti.names").read_text().splitlines() == list(classes)
    opencv = opencv_net(net, darknet_files / "kitti.cfg", darknet_files / "kitti.weights", tmp_path)
    for frame, image in images.items():
        blob = cv2.dnn.blobFromImage(image, 1 / 255.0, size, swapRB=True, crop=False)
        raw, decoded, clamped = repo_outputs(net, blob)
        their_raw, their_decoded = opencv(blob)
        assert raw_difference(raw, their_raw) < TOLERANCE, frame
        assert clamped.mean() < 0.05, frame  # a one-epoch head: a few huge boxes
        assert largest_difference(decoded[:, ~clamped], their_decoded[:, ~clamped], size) < TOLERANCE, frame


def test_the_darknet_cfg_holds_the_trained_size_classes_and_anchors(trained, darknet_files):
    """The repo's own reader builds the same network from the exported files: anchors and sizes as trained, every
    stored tensor as exported (the variances with darknet's eps difference)."""
    net, size, classes = repo_model(trained)
    assert net.cfg_size != size, "the ci-tiny run trains yolov3-small-kitti.cfg off its [net] size"
    again = Darknet(darknet_files / "kitti.cfg")
    assert (again.cfg_size, again.num_classes, again.heads) == (size, len(classes), net.heads)
    load_darknet_weights(again, darknet_files / "kitti.weights")
    shifted = darknet_bn(net).state_dict()
    stored = [key for key in shifted if not key.endswith("num_batches_tracked")]
    assert all(torch.equal(again.state_dict()[key], shifted[key]) for key in stored)


def test_small_bn_variances_still_match_opencv(trained, images, tmp_path):
    """darknet's BN eps (1e-6) is not PyTorch's (1e-5): with variances near 1e-3, as trained channels have, the
    written variances must carry the difference. Written without it, OpenCV's outputs move by more than 1e-3."""
    net, size, _ = repo_model(trained)
    with torch.no_grad():
        for layer in net.module_list:
            if hasattr(layer, "bn"):  # the same network but for eps: gamma / sqrt(var) kept
                layer.bn.running_var.mul_(1e-3)
                layer.bn.weight.mul_(1e-3 ** 0.5)
    blob = cv2.dnn.blobFromImage(images["000003"], 1 / 255.0, size, swapRB=True, crop=False)
    raw = repo_outputs(net, blob)[0]
    (tmp_path / "m.cfg").write_text(darknet_cfg(net, size, "test"))
    save_darknet_weights(darknet_bn(net), tmp_path / "m.weights")
    save_darknet_weights(net, tmp_path / "unshifted.weights")
    shifted = opencv_net(net, tmp_path / "m.cfg", tmp_path / "m.weights", tmp_path)(blob)[0]
    assert raw_difference(raw, shifted) < TOLERANCE
    unshifted = opencv_net(net, tmp_path / "m.cfg", tmp_path / "unshifted.weights", tmp_path)(blob)[0]
    assert raw_difference(raw, unshifted) > 10 * TOLERANCE


@pytest.fixture(scope="module")
def onnx_file(request, tmp_path_factory) -> Path:
    """``export.py --format onnx`` of the trained checkpoint (skipped before training without onnxruntime)."""
    pytest.importorskip("onnxruntime", reason="requirements-export.txt is not installed")
    path = tmp_path_factory.mktemp("onnx") / "best.onnx"
    trained = request.getfixturevalue("trained")
    done = run_python("export.py", "--weights", str(trained), "--format", "onnx", "--out", str(path))
    assert "onnxruntime vs PyTorch on 3 random inputs: largest difference" in done.stdout
    return path


def test_onnx_export_decodes_the_real_frames_as_pytorch_does(trained, onnx_file, images):
    """The six frames letterboxed as eval.py does, in one batch (the export traced a batch of 2): onnxruntime's
    decoded outputs equal PyTorch's decode within 1e-4 (boxes in input sizes)."""
    from models.export import onnxruntime_outputs
    net, size, _ = repo_model(trained)
    assert net.upsample == "deterministic", "the expand-based upsample is the one exported"
    batch = np.stack([letterbox(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), size)[0] for image in images.values()])
    batch = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32) / 255
    with torch.no_grad():
        expected = Decoded(net)(torch.from_numpy(batch)).numpy()
    got = onnxruntime_outputs(onnx_file.read_bytes(), batch)
    assert got.shape == expected.shape == (6, sum(3 * size[0] * size[1] // s**2 for s in (32, 16, 8)), 13)
    assert largest_difference(got, expected, size) < TOLERANCE


def test_onnx_file_names_its_input_size_classes_and_layout(trained, onnx_file):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(onnx_file))
    meta = {p.key: p.value for p in model.metadata_props}
    _, size, classes = repo_model(trained)
    assert meta["input_size"] == "256,96" and json.loads(meta["class_names"]) == list(classes)
    assert meta["input"].startswith("images: (N, 3, 96, 256) float32 RGB in [0, 1]")
    assert meta["output"].startswith("detections: (N, K, 13) float32")
    assert [i.name for i in model.graph.input] == ["images"] and [o.name for o in model.graph.output] == ["detections"]


def export_main(*argv: str) -> None:
    """export.py's main in this process, for the conditions it refuses before loading a model."""
    import export
    export.main(export.get_args_parser().parse_args(list(argv)))


def test_user_exports_onto_existing_files(tmp_path):
    """One error line naming the file, before the checkpoint is read; nothing is written or changed (the other two
    darknet files neither)."""
    (tmp_path / "kitti.cfg").write_text("mine\n")
    done = run_python("export.py", "--weights", "runs/exp/best.pt", "--format", "darknet", "--out",
                      str(tmp_path / "kitti"), check=False)
    assert_one_error_line(done, "export.py", str(tmp_path / "kitti.cfg"), "exists", "never overwrites")
    assert [p.name for p in tmp_path.iterdir()] == ["kitti.cfg"] and (tmp_path / "kitti.cfg").read_text() == "mine\n"


def test_user_names_the_input_as_the_output(tmp_path):
    weights = tmp_path / "model.weights"  # a checkpoint under a darknet name: --out model would write onto it
    weights.write_bytes(b"x")
    with pytest.raises(UserError, match="model.weights: --out would overwrite the input --weights"):
        export_main("--weights", str(weights), "--format", "darknet", "--out", str(tmp_path / "model"))
    assert weights.read_bytes() == b"x"


def test_user_gives_a_folder_or_a_non_onnx_name_as_out(tmp_path):
    with pytest.raises(UserError, match="is a folder; --out names the output file"):
        export_main("--weights", "best.pt", "--format", "darknet", "--out", str(tmp_path))
    with pytest.raises(UserError, match=r"model.pt: --format onnx writes one .onnx file; name --out NAME.onnx"):
        export_main("--weights", "best.pt", "--format", "onnx", "--out", str(tmp_path / "model.pt"))


@pytest.mark.parametrize("content, message", [(None, "checkpoint not found"), (b"junk", "not a loadable checkpoint")])
def test_user_exports_a_missing_file_or_one_that_is_not_a_checkpoint(tmp_path, content, message):
    weights = tmp_path / "best.pt"
    if content is not None:
        weights.write_bytes(content)
    with pytest.raises(UserError, match=message):
        export_main("--weights", str(weights), "--format", "darknet", "--out", str(tmp_path / "out"))
    assert sorted(p.name for p in tmp_path.iterdir()) == (["best.pt"] if content else [])


def test_user_exports_onnx_without_requirements_export(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(UserError, match=r"--format onnx needs (.+, )?onnxruntime(, .+)?, not installed: pip install -r "
                                        r"requirements-export\.txt$"):
        export_main("--weights", "best.pt", "--format", "onnx", "--out", str(tmp_path / "m.onnx"))


def test_user_asks_for_an_unknown_format(capsys):
    with pytest.raises(SystemExit) as exit_:
        export_main("--weights", "best.pt", "--format", "tflite", "--out", "m")
    assert exit_.value.code == 2 and "invalid choice: 'tflite'" in capsys.readouterr().err


def test_a_model_torch_cannot_export_is_one_error_naming_the_checkpoint(monkeypatch):
    def fails(*args, **kwargs):
        raise RuntimeError("Unsupported: an operator without an ONNX translation\nmore detail")
    monkeypatch.setattr(torch.onnx, "export", fails)
    net = Darknet(REPO / "cfg" / "yolov3-tiny-kitti.cfg")
    with pytest.raises(UserError, match=r"runs/x/best.pt: torch.onnx.export cannot express this model \(RuntimeError: "
                                        r"Unsupported: an operator without an ONNX translation\); export it with "
                                        r"--format darknet instead$"):
        onnx_bytes(net, (416, 128), ["Car"] * 8, "runs/x/best.pt")


def test_an_onnx_file_onnxruntime_cannot_run_or_that_computes_another_model_is_refused(trained, onnx_file):
    """export.py writes the .onnx only after onnxruntime ran it and agreed with PyTorch on random inputs."""
    from models.export import onnxruntime_difference
    net, size, classes = repo_model(trained)
    assert onnxruntime_difference(net, onnx_file.read_bytes(), size, "best.pt") < TOLERANCE
    with pytest.raises(UserError, match=r"^best.pt: onnxruntime cannot run the exported model \(.+\); export it "
                                        r"with --format darknet instead$"):
        onnxruntime_difference(net, b"not an onnx model", size, "best.pt")
    with torch.random.fork_rng():
        torch.manual_seed(1)
        other = Darknet(REPO / "cfg" / "yolov3-small-kitti.cfg", len(classes), input_size=size)
    with pytest.raises(UserError, match=r"^best.pt: onnxruntime's outputs differ from PyTorch's by .+ \(more than "
                                        r"0.001\) on random inputs"):
        onnxruntime_difference(other, onnx_file.read_bytes(), size, "best.pt")


"""Ways out for a trained model: darknet's ``.cfg`` + ``.weights`` (+ ``.names``), and an ONNX graph with its decode.

darknet: the cfg the model was built from, rewritten with what the run fixed: ``[net]`` width/height = the input
size, every ``[yolo]`` ``classes`` = C and ``anchors`` in pixels of that size (models/darknet.py scales the cfg's to
it), every ``[convolutional]`` ``filters`` as built (the heads' ``len(mask) * (5 + C)``). Everything else is written
as the cfg wrote it, every key being one darknet reads. The ``.weights`` file is ``save_darknet_weights``'s, with one
change. Batch norm divides by ``sqrt(var + 1e-5)`` in PyTorch (and AlexeyAB's darknet), by ``sqrt(var + 1e-6)`` in
OpenCV's darknet importer, by ``sqrt(var) + 1e-6`` in pjreddie's darknet on the CPU, so no variance suits all three.
Each running variance is written 1e-5 - 1e-6 higher: OpenCV then divides by exactly what PyTorch divides by,
pjreddie's darknet by a nearer value than without the raise, AlexeyAB's by one the raise puts off. On darknet's own
COCO yolov3-tiny through OpenCV, the largest head output difference over the six real frames (the measure of
tests/models/test_real_weights.py) is 9.5e-5 with the variances as loaded, 6.4e-6 with them so raised.

ONNX: ``images`` ``(N, 3, H, W)`` float32 RGB in [0, 1] at the input size, N free ->
``detections`` ``(N, K, 5 + C)`` float32, models.head.decode's output (what eval.py puts through NMS): xyxy boxes
in input pixels, objectness probability, C class probabilities. The graph's metadata_props name the input size,
the class names and these layouts.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from models.cfg import Block, parse_cfg
from models.darknet import Darknet
from models.head import decode
from models.weights import save_darknet_weights
from utils.errors import UserError
from utils.io import write_text

DARKNET_BN_EPS = 1e-6  # OpenCV's darknet importer: sqrt(var + 1e-6)
ONNX_INPUT, ONNX_OUTPUT = "images", "detections"
ONNX_CHECK_TOLERANCE = 1e-3  # onnxruntime vs PyTorch on random inputs, beyond which nothing is written (measured 1e-5)


def _number(value: float) -> str:
    """A cfg number that reads back as the same float64 (darknet parses with atof): ``10``, ``13.333333333333334``."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _block_text(block: Block, overrides: dict) -> list[str]:
    """A block's lines: its keys as written, ``overrides`` (key -> text) replacing or adding values."""
    values = {**block.raw, **overrides}
    return ["", f"[{block.type}]"] + [f"{key}={value}" for key, value in values.items()]


def darknet_cfg(model: Darknet, size: tuple[int, int], source: str) -> str:
    """The darknet cfg of ``model`` at input ``size`` (W, H), built from ``model.cfg_path``; ``source`` is named in
    its first line (the checkpoint it was exported from)."""
    net, *layers = parse_cfg(model.cfg_path)
    heads = iter(model.heads)
    lines = [f"# {Path(model.cfg_path).name} as trained in {source}: {model.num_classes} classes, input "
             f"{size[0]}x{size[1]}, anchors in pixels of that input"]
    lines += _block_text(net, {"width": str(size[0]), "height": str(size[1])})
    for block, module in zip(layers, model.module_list):
        overrides = {}
        if block.type == "convolutional":
            overrides = {"filters": str(module.conv.out_channels)}
        elif block.type == "yolo":
            head = next(heads)
            overrides = {"anchors": ", ".join(_number(v) for pair in head.all_anchors for v in pair),
                         "classes": str(head.num_classes)}
        lines += _block_text(block, overrides)
    return "\n".join(lines) + "\n"


def darknet_bn(model: Darknet) -> Darknet:
    """A copy of ``model`` whose running variances carry the eps difference (module docstring): OpenCV's
    ``(x - mean) / sqrt(var' + 1e-6)`` is then PyTorch's ``(x - mean) / sqrt(var + eps)``."""
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        for layer in shifted.module_list:
            if hasattr(layer, "bn"):
                layer.bn.running_var += layer.bn.eps - DARKNET_BN_EPS
    return shifted


def write_darknet(model: Darknet, size: tuple[int, int], classes, paths: dict[str, Path], source: str) -> None:
    """Write ``paths["cfg"]``, ``paths["weights"]`` and ``paths["names"]`` (one class name a line); on a failure
    the files written so far are removed again, so nothing half-exported is left."""
    writers = {"cfg": lambda p: write_text(p, darknet_cfg(model, size, source)),
               "names": lambda p: write_text(p, "".join(f"{name}\n" for name in classes)),
               "weights": lambda p: save_darknet_weights(darknet_bn(model), p)}
    done = []
    try:
        for kind, write in writers.items():
            write(paths[kind])
            done.append(paths[kind])
    except BaseException:
        for path in done:
            path.unlink(missing_ok=True)
        raise


def _first_line(exc: Exception) -> str:
    """``Type: first line of the message``: the exporters' messages run to pages."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class Decoded(nn.Module):
    """``model`` followed by its decode: ``(N, 3, H, W)`` float in [0, 1] -> ``(N, K, 5 + C)`` (models.head)."""

    def __init__(self, model: Darknet):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return decode(self.model(images), self.model.heads)


def onnx_metadata(size: tuple[int, int], classes) -> dict[str, str]:
    """What a user of the .onnx file needs to feed it and read it, as metadata_props."""
    return {"input_size": f"{size[0]},{size[1]}",
            "class_names": json.dumps(list(classes)),
            "input": f"{ONNX_INPUT}: (N, 3, {size[1]}, {size[0]}) float32 RGB in [0, 1], the frame letterboxed to "
                     f"{size[0]}x{size[1]} (scaled to fit, centred, padded with 114/255)",
            "output": f"{ONNX_OUTPUT}: (N, K, {5 + len(classes)}) float32 per candidate box: x1, y1, x2, y2 in "
                      "input pixels, objectness probability, one probability per class (independent sigmoids); "
                      "score = objectness * class probability, then NMS"}


def onnx_bytes(model: Darknet, size: tuple[int, int], classes, source: str) -> bytes:
    """The serialised ONNX model of ``Decoded(model)`` at ``size`` (W, H), batch size free, with its metadata.

    Raises UserError naming ``source`` when torch's exporter cannot express the model.
    """
    module = Decoded(model).eval()
    example = torch.zeros(2, model.in_channels, size[1], size[0])  # batch 2: torch.export specialises a batch of 1
    try:
        program = torch.onnx.export(module, (example,), dynamo=True, input_names=[ONNX_INPUT],
                                    output_names=[ONNX_OUTPUT], dynamic_shapes=({0: torch.export.Dim("batch")},),
                                    external_data=False, verbose=False)
    except Exception as exc:  # the exporter raises many types; none is the user's to debug from a traceback
        raise UserError(f"{source}: torch.onnx.export cannot express this model ({_first_line(exc)}); export it "
                        "with --format darknet instead") from None
    proto = program.model_proto
    for key, value in onnx_metadata(size, classes).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto.SerializeToString()


def largest_difference(ours: np.ndarray, theirs: np.ndarray, size: tuple[int, int]) -> float:
    """Largest difference of two ``(N, K, 5 + C)`` decoded outputs, a box coordinate counted in input widths or
    heights (in its own size beyond that: fp32 resolves a 1e4-pixel box of an untrained head to 1e-3 pixels), a
    probability as it is. NaN counts as infinite."""
    scale = np.ones(theirs.shape[-1], dtype=np.float64)
    scale[:4] = (size[0], size[1], size[0], size[1])
    difference = np.abs(ours.astype(np.float64) - theirs) / np.maximum(scale, np.abs(theirs))
    return float(np.nan_to_num(difference, nan=np.inf).max())


def onnxruntime_outputs(onnx_model: bytes, images: np.ndarray) -> np.ndarray:
    """onnxruntime's ``detections`` for ``images`` ``(N, 3, H, W)`` float32, on the CPU."""
    import onnxruntime
    session = onnxruntime.InferenceSession(onnx_model, providers=["CPUExecutionProvider"])
    return session.run([ONNX_OUTPUT], {ONNX_INPUT: images})[0]


def onnxruntime_difference(model: Darknet, onnx_model: bytes, size: tuple[int, int], source: str) -> float:
    """The largest difference (``largest_difference``) between onnxruntime running ``onnx_model`` and PyTorch
    running ``Decoded(model)``, on three random images of a fixed generator.

    Raises UserError naming ``source`` when onnxruntime cannot run the file or differs by more than
    ONNX_CHECK_TOLERANCE: such a file is not worth writing.
    """
    images = torch.rand(3, model.in_channels, size[1], size[0], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = Decoded(model.eval())(images).numpy()
    try:
        got = onnxruntime_outputs(onnx_model, images.numpy())
    except Exception as exc:  # onnxruntime's own exception types (invalid graph, missing kernel, ...)
        raise UserError(f"{source}: onnxruntime cannot run the exported model ({_first_line(exc)}); export it "
                        "with --format darknet instead") from None
    difference = largest_difference(got, expected, size)
    if not difference <= ONNX_CHECK_TOLERANCE:
        raise UserError(f"{source}: onnxruntime's outputs differ from PyTorch's by {difference:.2g} (more than "
                        f"{ONNX_CHECK_TOLERANCE:g}) on random inputs; export it with --format darknet instead")
    return difference


"""benchmarks/peer_throughput.py: the converted cfg and labels for the peer by hand, and one real smoke run without
the peer (CPU, tiny): the repository side trains and the peer is reported as skipped, exit 0."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import peer_throughput as pt
from tests.conftest import REPO


def test_peer_cfg_is_square_commentless_with_scaled_anchors():
    spec = {"size": 256, "batch": 4}
    text = pt.peer_cfg_text(REPO / "cfg/yolov3-small-kitti.cfg", spec)
    lines = text.splitlines()
    assert "#" not in text and lines[0] == "[net]"
    net = lines[1:lines.index("")]
    for key in ("batch=4", "subdivisions=1", "width=256", "height=256", "optimizer=sgd", "policy=steps",
                "scales=.1,.1"):
        assert key in net
    assert {k.split("=")[0] for k in net} >= {"momentum", "decay", "learning_rate", "burn_in", "max_batches", "steps"}
    anchors = [line for line in lines if line.startswith("anchors=")]
    assert len(anchors) == 3 and text.count("[yolo]") == 3 and "classes=8" in lines
    # 416x128 -> 256x256: widths x 256/416, heights x 2; first pair 8,12 -> 5,24
    assert anchors[0].startswith("anchors=5,24,16,22,")
    assert "layers=-1,12" in lines


def test_yolo_line_is_normalised_centre_and_size():
    line = pt.yolo_line(3, [100.0, 50.0, 300.0, 150.0], 400, 200)
    assert line == "3 0.500000 0.500000 0.500000 0.500000\n"
    assert pt.yolo_line(0, [-10.0, 0.0, 40.0, 250.0], 400, 200) == "0 0.050000 0.500000 0.100000 1.000000\n"


@pytest.mark.slow  # trains the throughput smoke
def test_smoke_without_the_peer_measures_the_repo_and_skips(tmp_path):
    """--smoke with a --peer-python that does not exist (~15 s on a loaded 2-core CPU; one torch thread, since two
    on a busy 2-core machine can make a step seconds long)."""
    out = tmp_path / "peer.json"
    cmd = [sys.executable, "benchmarks/peer_throughput.py", "--smoke", "--threads", "1", "--peer-python",
           str(tmp_path / "no-python"), "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "skipped: pytorchyolo not installed" in done.stdout
    data = json.loads(Path(out).read_text())
    assert data["repo"]["images_per_s_median"] > 0 and len(data["repo"]["images_per_s_per_round"]) == 1
    assert data["peer"]["skipped"].startswith("skipped: pytorchyolo not installed")
    assert data["ratio_repo_over_peer"] is None and data["peer_versions"] is None
    assert "| this repository |" in done.stdout and "| skipped |" in done.stdout

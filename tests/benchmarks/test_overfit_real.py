"""benchmarks/overfit_real.py, short: the pipeline memorises six real KITTI frames (CI, when ../shared is present).

The full benchmark (1248x384, 300 steps) is in benchmarks/README.md; this one trains 150 steps at 640x192 (about 50 s
on 2 cores) and still has to reach COCO mAP@0.5 >= 90 on the frames it trained on."""
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not


def test_six_real_frames_are_memorised(kitti_sample, tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/overfit_real.py", "--data", str(kitti_sample), "--size",
                           "640x192", "--steps", "150", "--project", str(tmp_path)], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "overfit" / "summary.json").read_text())
    assert summary["steps"] == 150 and summary["final"]["coco"]["mAP50"] >= 90, summary["final"]["coco"]

"""The experiment: --repeat in fresh processes, the comparison report, refusal of incompatible runs, the audit."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.conftest import run_python as run

TINY = ["--config", str(REPO / "cfg" / "ci-tiny.yaml")]


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> Path:
    """Two seeds x two repeats of the tiny config, each a fresh process, plus the report."""
    tmp = tmp_path_factory.mktemp("exp")
    run(str(REPO / "train.py"), *TINY, "--seeds", "202003,1", "--repeat", "2", "--project", str(tmp), "--name", "g")
    return tmp / "g"


def test_repeat_report_says_identical(grid):
    report = json.loads((grid / "report.json").read_text())
    assert report["bitwise_identical"] is True
    assert all(p["first_divergent_step"] is None for p in report["pairs"])
    assert report["within_seed"]["coco_mAP50"]["max_std"] == 0.0
    assert report["across_seeds"] is not None
    md = (grid / "report.md").read_text()
    assert "**bitwise identical**" in md
    assert (grid / "loss_curves.png").stat().st_size > 0 and (grid / "loss_diff.png").stat().st_size > 0


def test_compare_reports_first_divergent_step_across_seeds(grid, tmp_path):
    done = run("compare.py", str(grid / "s202003-r1"), str(grid / "s1-r1"), "--out", str(tmp_path))
    assert "report:" in done.stdout
    from experiment.comparison import first_divergence, load_run
    a, b = load_run(grid / "s202003-r1"), load_run(grid / "s1-r1")
    assert first_divergence(a, b) == 1  # different seeds: different initial weights, so step 1 already differs
    assert first_divergence(a, load_run(grid / "s202003-r2")) is None


def test_incompatible_runs_are_refused_with_keys(grid, tmp_path):
    other = tmp_path / "other"
    subprocess.run(["cp", "-r", str(grid / "s1-r1"), str(other)], check=True)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["lr"] = 0.5
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    done = run("compare.py", str(grid / "s202003-r1"), str(other), check=False)
    assert done.returncode != 0 and "config lr:" in done.stderr and "--force" in done.stderr
    assert run("compare.py", str(grid / "s202003-r1"), str(other), "--force", "--out", str(tmp_path / "f")).returncode == 0


def test_audit_strict_cpu_all_identical(grid):
    done = run("compare.py", "--audit", str(grid / "s202003-r1" / "last.pt"))
    first = done.stdout.splitlines()[0].split()
    assert first[0] == first[2] and "DIFFERS" not in done.stdout


def test_gpu_experiment_smoke_path_runs_on_cpu(tmp_path):
    """benchmarks/gpu_experiment.sh --smoke: the GPU experiment's path (3 modes x 2 runs + table) on the CPU."""
    done = subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_experiment.sh"), "--smoke"], cwd=REPO,
                          capture_output=True, text=True, timeout=600, env={**os.environ, "EXPERIMENT_DIR": str(tmp_path),
                                                                             "PYTHON": sys.executable})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    table = done.stdout[done.stdout.index("| mode |"):]
    for mode in ("strict", "off", "reference"):
        assert f"| {mode} | yes | none |" in table

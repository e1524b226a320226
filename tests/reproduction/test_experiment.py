"""The experiment: --repeat in fresh processes, the comparison report, refusal of incompatible runs, the audit, the
variance decomposition (--vary) and the A/B comparison."""
import json
import subprocess

import pytest
import yaml

from tests.conftest import REPO, run_summary
from tests.conftest import run_python as run
from tests.reproduction.conftest import TINY

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not


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
    forced = run("compare.py", str(grid / "s202003-r1"), str(other), "--force", "--out", str(tmp_path / "f"))
    assert forced.returncode == 0


def test_audit_strict_cpu_all_identical(grid):
    done = run("compare.py", "--audit", str(grid / "s202003-r1" / "last.pt"))
    first = done.stdout.splitlines()[0].split()
    assert first[0] == first[2] and "DIFFERS" not in done.stdout


def test_vary_decomposes_the_variance_and_ab_compares_the_identical_and_init_runs(tmp_path):
    """--vary init,order,aug --repeat 2: 8 runs in fresh processes (two at once), the identical runs' report and
    variance.md; then compare.py's A/B mode on two of its sources."""
    run(str(REPO / "train.py"), *TINY, "--vary", "init,order,aug", "--repeat", "2", "--jobs", "2", "--threads", "1",
        "--project", str(tmp_path), "--name", "v")
    group = tmp_path / "v"
    sources = ("init", "order", "aug", "identical")
    assert sorted(p.name for p in group.iterdir() if p.is_dir()) == sorted(f"{s}{k}" for s in sources for k in (1, 2))
    md = (group / "variance.md").read_text()
    assert all(f"| {s} | 2 |" in md for s in sources) and "seeds per group at 80% power" in md
    variance = json.loads((group / "variance.json").read_text())
    assert all(entry["sources"]["identical"]["std"] == 0.0 for entry in variance["metrics"].values())
    assert run_summary(group / "init1")["weights_sha256"] != run_summary(group / "init2")["weights_sha256"]
    assert "**bitwise identical**" in (group / "report.md").read_text()
    assert (group / "variance_by_source.png").stat().st_size > 0
    done = run("compare.py", "--baseline", str(group / "identical1"), str(group / "identical2"), "--candidate",
               str(group / "init1"), str(group / "init2"), "--intended", "seed_init", "--out", str(tmp_path / "ab"))
    report = (tmp_path / "ab" / "ab_report.md").read_text()
    assert "95% CI" in report and "| seed_init | -1 | 202004, 202005 |" in report and "Unpaired" in report
    assert report in done.stdout



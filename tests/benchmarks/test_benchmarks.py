"""benchmarks/train_throughput.py, gpu_bench.sh and gpu_session.sh: the grid and ratio logic by hand, and one real
smoke run (CPU, tiny) of gpu_session.sh --smoke, whose throughput stage is gpu_bench.sh --smoke (which delegates to
train_throughput.py --smoke)."""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import train_throughput as tt
from tests.conftest import REPO, shared_path


def _args(**overrides):
    args = tt.get_args_parser().parse_args([])
    return tt.resolve_args(argparse.Namespace(**{**vars(args), **overrides}))


def test_grid_varies_fill_for_strict_only(tmp_path):
    args, _ = _args(modes="strict,off", formats="nchw,channels_last", fill="both", precisions="fp32",
                    out=tmp_path / "x.json")
    labels = [tt.label(s) for s in tt.grid(args)]
    assert labels == ["strict/fp32/nchw/fill on", "strict/fp32/nchw/fill off", "strict/fp32/channels_last/fill on",
                      "strict/fp32/channels_last/fill off", "off/fp32/nchw/fill -", "off/fp32/channels_last/fill -"]
    assert args.workers == 2
    args, _ = _args(modes="off", formats="nchw", out=tmp_path / "y.json")  # bf16 autocast runs on CPUs too
    assert [tt.label(s) for s in tt.grid(args)] == ["off/fp32/nchw/fill -", "off/bf16/nchw/fill -"]


def test_grid_rejects_unknown_names(tmp_path):
    args, _ = _args(modes="strict,fast", out=tmp_path / "x.json")
    with pytest.raises(ValueError, match="strict, reference, off"):
        tt.grid(args)


def _row(mode, fmt, fill, images_per_s, sha="a"):
    return {"mode": mode, "precision": "fp32", "format": fmt, "fill": fill, "images_per_s": images_per_s,
            "step_ms_median": 1.0, "loader_wait_ms_mean": 0.5, "identical": True, "weights_sha256": [sha, sha]}


def test_ratios_against_fastest_off_and_same_format():
    rows = [_row("strict", "nchw", "on", 40.0), _row("strict", "nchw", "off", 45.0, sha="b"),
            _row("off", "nchw", "-", 50.0), _row("off", "channels_last", "-", 80.0)]
    tt.add_ratios(rows)
    assert rows[0]["x_fastest_off"] == pytest.approx(0.5) and rows[0]["x_off_same"] == pytest.approx(0.8)
    assert rows[3]["x_fastest_off"] == pytest.approx(1.0)
    assert rows[1]["fill_same_weights"] is False and "fill_same_weights" not in rows[0]
    assert "NOT the same as" in tt.table(rows)


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """One real run of bash benchmarks/gpu_session.sh --smoke (~2 minutes on 2 cores): the GPU session's path (the
    six-run experiment, the KITTI recipe smoke, the loop profile, the grid, gpu_bench.sh --smoke) on the CPU with the
    tiny configs. Returns (unpacked archive, stdout); gpu_bench.sh's own smoke is its throughput stage."""
    out = tmp_path_factory.mktemp("session")
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    done = subprocess.run(["bash", "benchmarks/gpu_session.sh", "--smoke"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    unpacked = out / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "-xzf", str(out / "gpu-session.tgz"), "-C", str(unpacked)], check=True)
    return unpacked, done.stdout


@pytest.mark.slow  # the GPU session's CPU smoke (every stage)
def test_smoke_json_has_every_config_measured_and_strict_identical(session):
    out, stdout = session
    files = list(out.glob("throughput-*-smoke-cpu.json"))
    assert len(files) == 1, list(out.iterdir())
    data = json.loads(files[0].read_text())
    assert data["meta"]["complete"] and data["meta"]["torch"]
    got = {(r["mode"], r["precision"], r["format"], r["fill"]): r for r in data["results"]}
    assert set(got) == {("strict", "fp32", "nchw", "on"), ("off", "fp32", "nchw", "-")}
    assert all(r["images_per_s"] > 0 and r["loader_wait_ms_mean"] >= 0 for r in got.values())
    strict = got["strict", "fp32", "nchw", "on"]
    assert strict["identical"] and len(set(strict["weights_sha256"])) == 1
    assert strict["switches"]["use_deterministic_algorithms"] and strict["switches"]["upsample"] == "deterministic"
    assert "| strict | fp32 | nchw | on |" in stdout


@pytest.mark.slow  # the GPU session's CPU smoke (every stage)
def test_smoke_records_the_environment(session):
    out, stdout = session
    env_files = list(out.glob("gpu_bench-env-*.txt"))
    assert len(env_files) == 1
    text = env_files[0].read_text()
    assert "torch " in text and "date: " in text
    assert "nvidia-smi: not available" in text or "name, driver_version" in text


def _fake_run(run_dir: Path, images_per_s: list[float], train_seconds: float) -> None:
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text("determinism: 'off'\nbatch_size: 4\naccumulate: 1\n")  # as yaml dumps it
    lines = [json.dumps({"type": "train", "step": i + 1, "images_per_s": v}) for i, v in enumerate(images_per_s)]
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    (run_dir / "summary.json").write_text(json.dumps({"train_seconds": train_seconds}))


def test_experiment_table_reads_a_report(tmp_path):
    from benchmarks import experiment_table
    group = tmp_path / "off"
    _fake_run(group / "r1", [10.0, 30.0, 20.0], 2.0)
    _fake_run(group / "r2", [12.0, 14.0, 40.0], 3.0)
    report = {"runs": [{"name": "off/r1"}, {"name": "off/r2"}], "bitwise_identical": False,
              "pairs": [{"first_divergent_step": 2}],
              "metrics": {"off/r1": {"coco_mAP50": 1.5}, "off/r2": {"coco_mAP50": 1.25}}}
    (group / "report.json").write_text(json.dumps(report))
    row = experiment_table.mode_row(group)
    assert row["mode"] == "off" and row["first_divergent_step"] == 2 and row["mAP50"] == [1.5, 1.25]
    assert [s["median_images_per_s"] for s in row["speed"]] == [20.0, 14.0]
    assert [s["loop_images_per_s"] for s in row["speed"]] == [6.0, 4.0]  # 3 steps x 4 images / 2 s and / 3 s
    assert "| off | no | 2 | 1.50 / 1.25 | 20.0 / 14.0 | 6.0 / 4.0 |" in experiment_table.table([row])


@pytest.mark.slow  # the GPU session's CPU smoke (every stage)
def test_gpu_session_smoke_runs_every_stage_on_cpu(session):
    unpacked, stdout = session
    table = stdout[stdout.index("| mode |"):]
    for mode in ("strict", "off", "reference"):  # on a CPU every mode reproduces itself
        assert f"| {mode} | yes | none |" in table
    assert '"nan": false' in stdout and "loop / step =" in stdout
    for expected in ("session.log", "kitti-smoke.log", "loop-profile.json", "experiment-table.md",
                     "grid-parallel.json"):
        assert (unpacked / expected).is_file(), sorted(p.name for p in unpacked.iterdir())


@pytest.mark.slow  # trains a learning-rate search
def test_stability_smoke_finds_a_largest_stable_lr(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/stability.py", "--smoke", "--out", str(tmp_path / "s.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((tmp_path / "s.json").read_text())
    row = data["rows"][0]
    assert row["variant"] == "darknet" and row["size"] == [256, 96]
    assert [t["stable"] for t in data["trials"]][0] is True  # the smallest lr trains
    assert row["largest_stable_lr"] is not None and "| darknet | 256x96 |" in done.stdout


def test_stability_verdict_by_hand():
    from benchmarks.stability import verdict
    burn_in = [10.0, 9.0, 8.0, 7.0, 6.0]  # burn-in-end loss: the median of the burn-in's last (up to 10) = 8.0
    assert verdict(burn_in + [5.0] * 5, 5)["stable"] is True
    noisy = verdict(burn_in + [5.0, 6.0, 30.0, 7.0, 6.0], 5)  # moving average 10.8 = 1.35 x 8: within the margin
    assert noisy["stable"] is True and noisy["max_ratio"] == pytest.approx(54 / 5 / 8)
    spiking = verdict(burn_in + [5.0, 6.0, 60.0, 7.0, 6.0], 5)  # 16.8 = 2.1 x 8
    assert spiking["stable"] is False
    assert verdict(burn_in + [5.0, float("nan")], 5)["stable"] is False


def darknet_model() -> list[str]:
    return [str(shared_path("darknet_weights", "yolov3-tiny.weights")),
            str(shared_path("darknet_cfg", "yolov3-tiny.cfg")), str(shared_path("darknet_weights", "coco.names"))]


@pytest.mark.slow  # runs a whole benchmark
def test_darknet_preprocess_compares_the_four_inputs_on_a_real_frame(tmp_path):
    weights, cfg, names = darknet_model()
    done = subprocess.run([sys.executable, "benchmarks/darknet_preprocess.py", "--weights", weights, "--cfg", cfg,
                           "--names", names, "--data", str(shared_path("kitti_sample")), "--ids", "000000",
                           "--sizes", "832x256", "--json", str(tmp_path / "p.json")], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = json.loads((tmp_path / "p.json").read_text())["sizes"]["832x256"]
    assert list(rows) == ["repo", "opencv-grey0.5", "darknet-grey114", "darknet"]
    assert rows["darknet"]["max_score_change_vs_darknet"] == 0
    assert rows["repo"]["max_score_change_vs_darknet"] > 0.01
    # darknet prints person 0.924838, person 0.857787, bicycle 0.297468 (the map's Pedestrian and Cyclist)
    assert rows["darknet"]["shown"] == [["Pedestrian 0.925", "Pedestrian 0.858", "Cyclist 0.298"]]


@pytest.mark.slow  # runs a whole benchmark
def test_real_transfer_scores_the_zero_shot_model(tmp_path):
    done = subprocess.run([sys.executable, "benchmarks/real_transfer.py", "--data", str(shared_path("kitti_sample")),
                           "--zero-shot", *darknet_model(), "--sizes", "832x256", "--json", str(tmp_path / "t.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    entry = json.loads((tmp_path / "t.json").read_text())["groups"]["zero-shot"]["832x256"]
    assert entry["mean"]["coco_mAP50"] == pytest.approx(13.27, abs=0.01)  # benchmarks/README.md's figure

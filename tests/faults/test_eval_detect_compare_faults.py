"""The fault catalogue of eval.py, detect.py, compare.py and the data tools: each test is named by what a user did;
a user-caused condition ends in one ``PROG: error:`` line, and outputs never land on inputs."""
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, fingerprints, run_python
from tests.experiment.test_ab import fake_run
from tests.faults.conftest import assert_one_error_line, fresh_data, train, tree


def data_root(run_dir) -> "os.PathLike":
    return yaml.safe_load((run_dir / "config.yaml").read_text())["data"]


def test_user_evaluates_a_checkpoint_that_does_not_exist(tmp_path):
    done = run_python("eval.py", "--weights", str(tmp_path / "best.pt"), check=False)
    assert_one_error_line(done, "eval.py", "best.pt", "not found")


def test_user_evaluates_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "best.pt"
    bad.write_bytes(os.urandom(1000))
    assert_one_error_line(run_python("eval.py", "--weights", str(bad), check=False), "eval.py", str(bad),
                          "not a loadable checkpoint")


def test_user_scores_a_results_folder_that_does_not_exist(tmp_path, finished_run):
    labels = f"{data_root(finished_run)}/training/label_2"
    done = run_python("eval.py", "--results", str(tmp_path / "res"), "--labels", labels, "--json",
                      str(tmp_path / "m.json"), check=False)
    assert_one_error_line(done, "eval.py", "res", "result directory not found")


def test_user_forgets_labels_in_model_free_mode(tmp_path):
    done = run_python("eval.py", "--results", str(tmp_path), "--json", str(tmp_path / "m.json"), check=False)
    assert_one_error_line(done, "eval.py", "--results needs --labels and --json")


def test_user_writes_the_metrics_json_into_the_label_folder(tmp_path, finished_run):
    labels = REPO / data_root(finished_run) / "training" / "label_2"
    before = tree(labels)
    done = run_python("eval.py", "--results", str(labels), "--labels", str(labels), "--json",
                      str(labels / "metrics.json"), check=False)
    assert_one_error_line(done, "eval.py", "outputs never land on inputs")
    assert tree(labels) == before


def test_user_writes_a_result_line_with_fifteen_fields(tmp_path, finished_run):
    labels = REPO / data_root(finished_run) / "training" / "label_2"
    results = tmp_path / "res"
    results.mkdir()
    frame = sorted(labels.glob("*.txt"))[0].stem
    (results / f"{frame}.txt").write_text("Car -1 -1 -10 1.00 2.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10\n")
    done = run_python("eval.py", "--results", str(results), "--labels", str(labels), "--json",
                      str(tmp_path / "m.json"), check=False)
    assert_one_error_line(done, "eval.py", f"{results / frame}.txt:1:", "expected 16")


def test_user_evaluates_into_a_folder_holding_their_own_files(tmp_path, finished_run):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")
    done = run_python("eval.py", "--weights", str(finished_run / "best.pt"), "--out", str(out), check=False)
    assert_one_error_line(done, "eval.py", str(out), "did not write")
    assert tree(out) == {"notes.txt": b"my notes"}


def test_user_detects_into_the_source_folder(tmp_path, finished_run):
    images = tmp_path / "images"
    shutil.copytree(REPO / data_root(finished_run) / "training" / "image_2", images)
    before = tree(images)
    done = run_python("detect.py", "--weights", str(finished_run / "best.pt"), "--source", str(images), "--out",
                      str(images), check=False)
    assert_one_error_line(done, "detect.py", "would overwrite the input")
    assert tree(images) == before


def test_user_detects_into_the_ground_truth_label_folder(tmp_path, finished_run):
    root = tmp_path / "kitti"
    shutil.copytree(REPO / data_root(finished_run), root)
    labels = root / "training" / "label_2"
    before = tree(labels)
    done = run_python("detect.py", "--weights", str(finished_run / "best.pt"), "--source",
                      str(root / "training" / "image_2"), "--out", str(labels), check=False)
    assert_one_error_line(done, "detect.py", str(labels), "did not write")
    assert tree(labels) == before


def test_user_runs_detect_twice_into_its_own_output(tmp_path, finished_run):
    """The second run reuses its own folder and writes the same files, byte for byte."""
    image = sorted((REPO / data_root(finished_run) / "training" / "image_2").glob("*.png"))[0]
    trees = []
    for _ in range(2):
        run_python("detect.py", "--weights", str(finished_run / "best.pt"), "--source", str(image), "--out",
                   str(tmp_path / "det"), "--conf-thres", "0.001")
        trees.append(tree(tmp_path / "det"))
    assert set(trees[0]) == {".detect.py-output", f"{image.stem}.png", f"{image.stem}.txt"}
    assert trees[0][f"{image.stem}.txt"].strip(), "no detection written: the comparison would be vacuous"
    assert trees[1] == trees[0]


def test_user_detects_on_a_source_that_does_not_exist(tmp_path, finished_run):
    done = run_python("detect.py", "--weights", str(finished_run / "best.pt"), "--source", str(tmp_path / "x.png"),
                      "--out", str(tmp_path / "det"), check=False)
    assert_one_error_line(done, "detect.py", "x.png", "no such image or directory")


def test_user_compares_a_single_run(finished_run):
    assert_one_error_line(run_python("compare.py", str(finished_run), check=False), "compare.py",
                          "at least two run directories")


def test_user_compares_a_folder_that_is_not_a_run(tmp_path, finished_run):
    done = run_python("compare.py", str(finished_run), str(tmp_path), check=False)
    assert_one_error_line(done, "compare.py", str(tmp_path), "not a finished run directory")


@pytest.mark.slow  # trains three runs
def test_user_compares_a_stopped_and_resumed_run_with_an_uninterrupted_one(tmp_path):
    """--max-steps is not part of what a run is: the two runs are comparable, and identical."""
    data = fresh_data(tmp_path / "data")
    assert train(tmp_path / "runs", "a", "--data", str(data)).returncode == 0
    assert train(tmp_path / "runs", "b", "--data", str(data), "--max-steps", "1").returncode == 0
    assert train(tmp_path / "runs", "x", "--resume", str(tmp_path / "runs" / "b" / "last.pt")).returncode == 0
    assert fingerprints(tmp_path / "runs" / "a") == fingerprints(tmp_path / "runs" / "b")
    done = run_python("compare.py", str(tmp_path / "runs" / "a"), str(tmp_path / "runs" / "b"), "--out",
                      str(tmp_path / "report"), check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "**bitwise identical**" in (tmp_path / "report" / "report.md").read_text()


def test_user_ab_compares_groups_that_differ_in_lr_and_momentum_without_intended(tmp_path):
    """Exactly one differing key would be taken as the intended change; two are refused, each named."""
    for group, changes in (("a", {}), ("b", {"lr": 0.004, "momentum": 0.8})):
        for k in (1, 2):
            fake_run(tmp_path / group / f"r{k}", 50.0 + k, seed=k, **changes)
    done = run_python("compare.py", "--baseline", str(tmp_path / "a"), "--candidate", str(tmp_path / "b"),
                      check=False)
    assert_one_error_line(done, "compare.py", "lr: 0.002 -> 0.004", "momentum: 0.9 -> 0.8", "--intended lr,momentum",
                          "--force")
    assert not (tmp_path / "b" / "ab-report").exists()


def test_user_audits_a_checkpoint_that_does_not_exist(tmp_path):
    done = run_python("compare.py", "--audit", str(tmp_path / "last.pt"), check=False)
    assert_one_error_line(done, "compare.py", "last.pt", "not found")


def test_user_generates_synthetic_data_into_a_non_empty_folder(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    done = subprocess.run([sys.executable, "-m", "data.synthetic", "--out", str(tmp_path), "--num", "4"], cwd=REPO,
                          capture_output=True, text=True)
    assert_one_error_line(done, "data.synthetic", str(tmp_path), "not empty")
    assert tree(tmp_path) == {"keep.txt": b"mine"}


def test_user_computes_anchors_from_a_folder_without_labels(tmp_path):
    done = subprocess.run([sys.executable, "-m", "data.anchors", "--labels", str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True)
    assert_one_error_line(done, "data.anchors", str(tmp_path), "no label files")


def test_user_scores_results_that_match_no_frame_of_the_split(tmp_path, finished_run):
    """Wrong directory or wrong ids: every frame would count as undetected and the table would be all zeros."""
    labels = REPO / data_root(finished_run) / "training" / "label_2"
    results = tmp_path / "res"
    results.mkdir()
    (results / "999999.txt").write_text("Car -1 -1 -10 1.00 2.00 30.00 40.00 -1 -1 -1 -1000 -1000 -1000 -10 0.9\n")
    done = run_python("eval.py", "--results", str(results), "--labels", str(labels), "--json",
                      str(tmp_path / "m.json"), check=False)
    first = sorted(labels.glob("*.txt"))[0].name
    assert_one_error_line(done, "eval.py", str(results), f"first expected: {results / first}", "none of the")
    assert not (tmp_path / "m.json").exists()


def test_every_model_free_run_says_how_many_frames_had_a_result_file(tmp_path, finished_run):
    labels = REPO / data_root(finished_run) / "training" / "label_2"
    results = tmp_path / "res"
    results.mkdir()
    frames = sorted(labels.glob("*.txt"))
    (results / frames[0].name).write_text("")
    done = run_python("eval.py", "--results", str(results), "--labels", str(labels), "--json",
                      str(tmp_path / "m.json"))
    assert f"result files: 1 of {len(frames)} frames in {results}" in done.stdout


def test_user_gives_a_class_map_to_result_files(tmp_path, finished_run):
    labels = REPO / data_root(finished_run) / "training" / "label_2"
    done = run_python("eval.py", "--results", str(labels), "--labels", str(labels), "--json",
                      str(tmp_path / "m.json"), "--class-map", "coco-kitti", check=False)
    assert_one_error_line(done, "eval.py", "--class-map maps a model's classes")


def test_user_maps_a_class_the_model_does_not_have(tmp_path, finished_run):
    cmap = tmp_path / "map.yaml"
    cmap.write_text("car: Car\nlorry: Truck\n")
    done = run_python("detect.py", "--weights", str(finished_run / "best.pt"), "--source",
                      str(REPO / data_root(finished_run) / "training" / "image_2"), "--out", str(tmp_path / "det"),
                      "--class-map", str(cmap), check=False)
    assert_one_error_line(done, "detect.py", str(cmap), "'car', 'lorry' not in the model's classes")
    assert not (tmp_path / "det").exists()

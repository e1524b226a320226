"""The fault catalogue of train.py: each test is named by what a user did, and checks the CLI contract (one
``train.py: error:`` line naming the file and what to do, no traceback) and that nothing the user made was lost."""
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, run_python
from tests.faults.conftest import TINY, assert_one_error_line, fresh_data, train, tree

PROG = "train.py"


def test_user_passes_a_word_where_a_number_belongs(tmp_path):
    assert_one_error_line(train(tmp_path, "x", "--epochs", "two"), PROG, "--epochs: epochs expects int, got 'two'")


def test_user_writes_a_preset_with_a_yaml_syntax_error(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("epochs: 2\nlr: [0.1\nbatch_size: 4\n")
    done = run_python("train.py", "--config", str(preset), "--project", str(tmp_path), check=False)
    assert_one_error_line(done, PROG, f"{preset}:", "not valid YAML")


def test_user_writes_a_preset_with_an_unknown_key(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("learning_rate: 0.1\n")
    done = run_python("train.py", "--config", str(preset), "--project", str(tmp_path), check=False)
    assert_one_error_line(done, PROG, str(preset), "unknown config key(s) learning_rate")


def test_user_names_a_preset_that_does_not_exist(tmp_path):
    done = run_python("train.py", "--config", str(tmp_path / "nope.yaml"), check=False)
    assert_one_error_line(done, PROG, "nope.yaml", "No such file")


def test_user_points_data_at_a_folder_that_does_not_exist(tmp_path):
    assert_one_error_line(train(tmp_path, "x", "--data", str(tmp_path / "kitti")), PROG, "kitti", "split list")
    assert not (tmp_path / "x").exists()  # a failed start leaves no run directory


def test_user_asks_for_a_class_kitti_does_not_have(tmp_path):
    done = train(tmp_path, "x", "--classes", "Car,Truck2")
    assert_one_error_line(done, PROG, "unknown Truck2", "Pedestrian")


def test_user_gives_splits_that_share_frames(tmp_path):
    data = fresh_data(tmp_path / "data")
    (data / "ImageSets" / "val.txt").write_text((data / "ImageSets" / "train.txt").read_text())
    done = train(tmp_path / "runs", "x", "--data", str(data))
    assert_one_error_line(done, PROG, "share 8 of 8 val frames", "--allow-split-overlap")
    assert not (tmp_path / "runs" / "x").exists()


@pytest.mark.slow  # trains
def test_user_overlaps_the_splits_on_purpose(tmp_path):
    data = fresh_data(tmp_path / "data")
    (data / "ImageSets" / "val.txt").write_text((data / "ImageSets" / "train.txt").read_text())
    done = train(tmp_path / "runs", "x", "--data", str(data), "--allow-split-overlap", "true")
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow  # trains
def test_user_labels_a_box_entirely_outside_its_image(tmp_path):
    data = fresh_data(tmp_path / "data")
    frame = (data / "ImageSets" / "train.txt").read_text().split()[0]
    label = data / "training" / "label_2" / f"{frame}.txt"
    lines = label.read_text().splitlines()
    lines.append("Car 0.00 0 0.00 1300.00 100.00 1350.00 150.00 1.5 1.6 3.9 1.0 1.5 20.0 0.0")
    label.write_text("\n".join(lines) + "\n")
    done = train(tmp_path / "runs", "x", "--data", str(data))
    assert_one_error_line(done, PROG, f"{label}:{len(lines)}:", "entirely outside", "--bad-labels skip")
    skipped = train(tmp_path / "runs", "y", "--data", str(data), "--bad-labels", "skip")
    assert skipped.returncode == 0 and "entirely outside" in skipped.stderr


def test_user_has_a_label_line_with_fourteen_fields(tmp_path):
    data = fresh_data(tmp_path / "data")
    frame = (data / "ImageSets" / "val.txt").read_text().split()[0]
    label = data / "training" / "label_2" / f"{frame}.txt"
    label.write_text("Car 0.00 0 0.00 10.00 20.00 50.00 60.00 1.5 1.6 3.9 1.0 1.5 20.0\n")
    assert_one_error_line(train(tmp_path / "runs", "x", "--data", str(data)), PROG, f"{label}:1:", "expected 15")


def test_user_has_a_corrupt_png_read_by_a_dataloader_worker(tmp_path):
    data = fresh_data(tmp_path / "data")
    frame = (data / "ImageSets" / "train.txt").read_text().split()[0]
    image = data / "training" / "image_2" / f"{frame}.png"
    image.write_bytes(image.read_bytes()[:2000])  # the header survives; the cut shows only when decoding
    done = train(tmp_path / "runs", "x", "--data", str(data), "--cache", "none", "--workers", "2")
    assert_one_error_line(done, PROG, str(image), "cannot decode image")
    assert not (tmp_path / "runs" / "x").exists()  # it failed before its first step


def test_user_writes_a_model_cfg_with_an_unknown_key(tmp_path):
    cfg = tmp_path / "m.cfg"
    cfg.write_text((REPO / "cfg" / "yolov3-small-kitti.cfg").read_text().replace("batch_normalize=1",
                                                                                  "batchnorm=1", 1))
    line = next(i for i, t in enumerate(cfg.read_text().splitlines(), 1) if t.startswith("batchnorm"))
    assert_one_error_line(train(tmp_path, "x", "--model", str(cfg)), PROG, f"{cfg}:{line}:", "unknown key")


def test_user_forgets_filters_in_a_convolutional_block(tmp_path):
    cfg = tmp_path / "m.cfg"
    text = (REPO / "cfg" / "yolov3-small-kitti.cfg").read_text()
    cfg.write_text(text.replace("filters=16\n", "", 1))
    assert_one_error_line(train(tmp_path, "x", "--model", str(cfg)), PROG, str(cfg),
                          "missing the required key 'filters'")


@pytest.mark.slow  # trains
def test_user_edits_the_model_cfg_between_stop_and_resume(tmp_path):
    cfg = tmp_path / "m.cfg"
    cfg.write_text((REPO / "cfg" / "yolov3-small-kitti.cfg").read_text())
    assert train(tmp_path, "r", "--model", str(cfg), "--max-steps", "1").returncode == 0
    cfg.write_text(cfg.read_text().replace("activation=leaky", "activation=relu", 1))
    metrics = (tmp_path / "r" / "metrics.jsonl").read_bytes()
    done = train(tmp_path, "ignored", "--resume", str(tmp_path / "r" / "last.pt"))
    assert_one_error_line(done, PROG, str(cfg), "model cfg changed since this run was configured")
    assert (tmp_path / "r" / "metrics.jsonl").read_bytes() == metrics


@pytest.mark.slow  # trains
def test_user_edits_the_model_cfg_and_trains_again(tmp_path):
    """A changed input is not nondeterminism: the second run must not claim 'NOT reproduced'."""
    cfg = tmp_path / "m.cfg"
    cfg.write_text((REPO / "cfg" / "yolov3-small-kitti.cfg").read_text())
    assert train(tmp_path, "a", "--model", str(cfg)).returncode == 0
    cfg.write_text(cfg.read_text().replace("activation=leaky", "activation=relu", 1))
    done = train(tmp_path, "b", "--model", str(cfg))
    assert done.returncode == 0 and "NOT reproduced" not in done.stdout and "no earlier run" in done.stdout


@pytest.mark.slow  # trains
def test_user_resumes_a_checkpoint_copied_from_another_run(tmp_path, finished_run, copy_of):
    run = copy_of(finished_run)
    other = tmp_path / "other"
    assert train(other, "b", "--lr", "0.001", "--max-steps", "1").returncode == 0
    (run / "last.pt").write_bytes((other / "b" / "last.pt").read_bytes())
    before = tree(run)
    done = train(tmp_path, "ignored", "--resume", str(run / "last.pt"))
    assert_one_error_line(done, PROG, "belongs to another run", "lr: 0.002 -> 0.001")
    assert tree(run) == before  # metrics.jsonl, config.yaml and summary.json untouched


@pytest.mark.slow  # trains
def test_user_resumes_after_a_crash_tore_the_last_metrics_line(tmp_path):
    assert train(tmp_path, "a").returncode == 0
    assert train(tmp_path, "r", "--max-steps", "1").returncode == 0
    metrics = tmp_path / "r" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"type": "train", "step": 2, "loss_f')  # power loss mid-line
    done = train(tmp_path, "ignored", "--resume", str(tmp_path / "r" / "last.pt"))
    assert done.returncode == 0 and "torn last line" in done.stderr and f"{metrics}:" in done.stderr
    from tests.conftest import fingerprints
    assert fingerprints(tmp_path / "r") == fingerprints(tmp_path / "a")


def test_user_resumes_a_file_that_does_not_exist(tmp_path):
    assert_one_error_line(train(tmp_path, "x", "--resume", str(tmp_path / "last.pt")), PROG, "last.pt",
                          "not found")


def test_user_resumes_a_file_that_is_not_a_checkpoint(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(os.urandom(4096))
    assert_one_error_line(train(tmp_path, "x", "--resume", str(bad)), PROG, str(bad), "not a loadable checkpoint")


def test_user_resumes_a_pickle_that_would_run_code(tmp_path):
    bad = tmp_path / "last.pt"
    code = "import torch, subprocess, sys; torch.save({'x': subprocess.Popen}, sys.argv[1])"
    subprocess.run([sys.executable, "-c", code, str(bad)], check=True)
    assert_one_error_line(train(tmp_path, "x", "--resume", str(bad)), PROG, str(bad), "not a loadable checkpoint")


def test_user_combines_resume_and_config(tmp_path, finished_run):
    done = run_python("train.py", *TINY, "--resume", str(finished_run / "last.pt"), check=False)
    assert_one_error_line(done, PROG, "--resume takes the config from the checkpoint")


def test_user_names_a_project_folder_under_a_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    assert_one_error_line(run_python("train.py", *TINY, "--project", str(tmp_path / "file" / "runs"), check=False),
                          PROG, "file", "Not a directory")


def test_user_asks_for_cuda_on_a_machine_without_it(tmp_path):
    done = train(tmp_path, "x", "--device", "cuda")
    if done.returncode == 0:  # a GPU is present: nothing to refuse
        return
    assert_one_error_line(done, PROG, "no CUDA device", "--device cpu")


def test_user_gives_an_input_size_that_is_not_a_multiple_of_32(tmp_path):
    assert_one_error_line(train(tmp_path, "x", "--img-size", "100,50"), PROG, "img_size", "multiples of 32")


def test_user_asks_for_zero_repeats_or_repeated_seeds(tmp_path):
    assert_one_error_line(train(tmp_path, "x", "--repeat", "0"), PROG, "--repeat must be >= 1")
    assert_one_error_line(train(tmp_path, "x", "--seeds", "1,1"), PROG, "distinct seeds")


def test_user_gives_grid_launcher_flags_to_one_run_or_too_many_jobs(tmp_path):
    assert_one_error_line(train(tmp_path, "x", "--jobs", "2"), PROG, "--jobs: for the runs of a grid")
    assert_one_error_line(train(tmp_path, "x", "--launcher", "ray"), PROG, "--launcher: for the runs of a grid")
    cores = len(os.sched_getaffinity(0))
    seeds = ",".join(str(seed) for seed in range(1, cores + 2))  # as many runs as jobs: the cap leaves them all
    assert_one_error_line(train(tmp_path, "x", "--seeds", seeds, "--jobs", str(cores + 1), "--threads", "1"), PROG,
                          f"--jobs {cores + 1} x --threads 1 = {cores + 1} threads, but this machine gives {cores}")
    assert not (tmp_path / "x").exists()


@pytest.mark.slow  # trains
def test_user_sets_a_learning_rate_that_diverges(tmp_path):
    """At lr 1e10 the loss itself turns NaN before any checkpoint; at 1e6 the loss stays finite while the weights
    explode, which the evaluation catches, after last.pt was written of blown-up weights. Neither names a
    checkpoint to start from: both advise a fresh run with a lower lr, and say how the checkpoint was judged."""
    done = train(tmp_path, "x", "--lr", "1e10", "--epochs", "20", "--burn-in-images", "4")
    assert_one_error_line(done, PROG, "non-finite loss at optimizer step 2",
                          "no checkpoint written yet: start a fresh run with a lower --lr")
    done = train(tmp_path, "y", "--lr", "1e6", "--epochs", "20", "--burn-in-images", "4")
    line = assert_one_error_line(done, PROG, "outputs contain NaN or inf", f"last {tmp_path / 'y' / 'last.pt'}",
                                 "blown up (largest |parameter|", "start a fresh run with a lower --lr")
    assert "--weights" not in line


@pytest.mark.slow  # trains
def test_user_fills_the_disk_while_a_checkpoint_is_written(tmp_path):
    """A write limit stands in for a full disk: the save fails, the old last.pt and no temporary file remain."""
    assert train(tmp_path, "r", "--max-steps", "1").returncode == 0
    last = tmp_path / "r" / "last.pt"
    old = last.read_bytes()
    code = ("import resource, runpy, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({len(old) // 2}, {len(old) // 2})); "
            "sys.argv = ['train.py'] + sys.argv[1:]; runpy.run_path('train.py', run_name='__main__')")
    done = run_python("-c", code, "--resume", str(last), check=False)
    assert_one_error_line(done, PROG, str(last), "File too large", "previous file is intact")
    assert last.read_bytes() == old
    assert not [p for p in (tmp_path / "r").iterdir() if p.name.endswith(".tmp")]


@pytest.mark.slow  # trains
def test_user_presses_ctrl_c_during_training(tmp_path):
    cmd = [sys.executable, "train.py", *TINY, "--project", str(tmp_path), "--name", "r", "--epochs", "200"]
    # A terminal's Ctrl-C reaches a process whose SIGINT is not ignored; a test runner started in the background by
    # a non-interactive shell ignores it, and a child would inherit that: give the child the default disposition.
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 300
    while not (tmp_path / "r" / "last.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err and "train.py: interrupted" in err
    assert (tmp_path / "r" / "last.pt").is_file()  # the run is kept: resume goes on from its last checkpoint

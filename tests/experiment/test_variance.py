"""experiment.variance on fabricated --vary group folders: the plan of runs, loading by source, shares of variance,
the summary sentence, a reproducible report; and train.py's refusals of a bad --vary."""
from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
from pathlib import Path

import pytest

import train
from experiment import variance
from experiment.statistics import REPORT_SEED, seeds_needed, variance_by_source
from tests.experiment.test_ab import fake_run
from training.config import TrainConfig
from utils.errors import UserError

SEED = 202003


def vary_group(folder: Path, values: dict[str, list[float]]) -> Path:
    """A --vary group folder: run k of source S (S1, S2, ...) with COCO mAP@0.5 values[S][k - 1], seeded as
    plan_runs seeds it, plus the files a group folder holds besides its runs."""
    for source, vals in values.items():
        for k, v in enumerate(vals, start=1):
            seeds = {} if source == "identical" else {f"seed_{source}": SEED + k}
            fake_run(folder / f"{source}{k}", v, seed=SEED, **seeds)
    (folder / "init1.yaml").write_text("seed_init: 202004\n")
    (folder / "notes").mkdir()
    return folder


def test_parse_sources():
    assert variance.parse_sources("order, init") == ["order", "init"]
    for text, fragment in (("init,weights", "subset of init,order,aug, got 'init,weights' (unknown: weights)"),
                           ("", "subset of init,order,aug"), ("aug,aug", "twice")):
        with pytest.raises(UserError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            variance.parse_sources(text)


def test_plan_varies_one_source_at_a_time():
    cfg = dataclasses.replace(TrainConfig(), seed=7, seed_order=99)  # a preset's source seed is reset too
    plan = variance.plan_runs(cfg, ["init", "aug"], 2)
    assert [name for name, _ in plan] == ["init1", "init2", "aug1", "aug2", "identical1", "identical2"]
    seeds = {name: (c.seed, c.seed_init, c.seed_order, c.seed_aug) for name, c in plan}
    assert seeds == {"init1": (7, 8, -1, -1), "init2": (7, 9, -1, -1), "aug1": (7, -1, -1, 8),
                     "aug2": (7, -1, -1, 9), "identical1": (7, -1, -1, -1), "identical2": (7, -1, -1, -1)}
    assert all(dataclasses.replace(c, seed_init=-1, seed_aug=-1) == plan[-1][1] for _, c in plan)


def test_load_sources_by_name_in_index_order(tmp_path):
    group = vary_group(tmp_path / "v", {"identical": [1.0, 1.0], "order": [1.0, 2.0], "init": [1.0, 3.0]})
    shutil.copytree(group / "init2", group / "init10")
    sources = variance.load_sources(group)
    assert list(sources) == ["init", "order", "identical"]
    assert [r.path.name for r in sources["init"]] == ["init1", "init2", "init10"]
    assert sources["init"][1].seeds == (SEED + 2, SEED, SEED)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no run folders named init1"):
        variance.load_sources(tmp_path / "empty")


def test_shares_and_sentence_on_hand_made_numbers(tmp_path):
    values = {"init": [1.0, 3.0], "order": [1.0, 2.0], "identical": [1.0, 1.0]}
    report = variance.variance_report(variance.load_sources(vary_group(tmp_path / "v", values)), n_resamples=500)
    coco = report["metrics"]["coco_mAP50"]
    assert coco["sources"] == variance_by_source(values, n_resamples=500, seed=REPORT_SEED)
    assert coco["sources"]["init"]["share"] == pytest.approx(0.8)
    assert coco["sources"]["order"]["share"] == pytest.approx(0.2)
    assert (coco["sources"]["identical"]["std"], coco["sources"]["identical"]["share"]) == (0.0, 0.0)
    pooled_std = coco["pooled"]["std"]
    assert coco["pooled"]["n"] == 4 and pooled_std == pytest.approx(statistics.stdev([1.0, 3.0, 1.0, 2.0]))
    needed = seeds_needed(pooled_std, pooled_std, 1.0, 0.8)
    assert report["size"]["largest_source"] == "init" and report["size"]["seeds_needed"] == needed
    assert report["sentence"] == (
        f"init moves COCO mAP@0.5 the most (std {2 ** 0.5:.3f} points between its runs); with this spread, a "
        f"1-point difference in COCO mAP@0.5 needs {needed} seeds per group at 80% power (pooled std "
        f"{pooled_std:.3f} of the 4 runs with one seed changed; unpaired groups).")
    # the KITTI metrics are the same in every run: no source moves them, and no share is defined
    car = report["metrics"]["kitti_Car_AP40_moderate"]["sources"]
    assert all(s["std"] == 0.0 and s["share"] is None for s in car.values())


def test_no_spread_says_so(tmp_path):
    sources = variance.load_sources(vary_group(tmp_path / "v", {"init": [5.0, 5.0], "identical": [5.0, 5.0]}))
    assert variance.variance_report(sources, n_resamples=100)["sentence"].startswith(
        "No source of randomness moves COCO mAP@0.5 (every std is 0); with this spread, a 1-point difference in "
        "COCO mAP@0.5 needs 2 seeds per group at 80% power")


def test_report_files_are_reproducible(tmp_path):
    values = {"init": [50.0, 51.5], "order": [50.2, 50.6], "aug": [49.9, 50.4], "identical": [50.1, 50.1]}
    first = vary_group(tmp_path / "1" / "v", values)
    second = vary_group(tmp_path / "2" / "v", values)
    reports = [variance.write_variance_report(g, variance.load_sources(g)) for g in (first, second)]
    assert reports[0]["metrics"] == reports[1]["metrics"] and reports[0]["sentence"] == reports[1]["sentence"]
    for name in ("variance.md", "variance_by_source.png"):
        assert (first / name).read_bytes() == (second / name).read_bytes()
    md = (first / "variance.md").read_text()
    assert md.index("## coco_mAP50") > md.index(reports[0]["sentence"])
    for source in ("init", "order", "aug", "identical", "pooled (all but identical)"):
        assert f"| {source} | " in md
    assert json.loads((first / "variance.json").read_text())["sentence"] == reports[0]["sentence"]


def test_a_metric_missing_in_a_run_is_reported_missing(tmp_path):
    group = vary_group(tmp_path / "v", {"init": [1.0, 2.0], "identical": [1.0, 1.0]})
    shutil.rmtree(group / "init2")
    fake_run(group / "init2", 2.0, kitti=(60.0, 50.0, None), seed=SEED, seed_init=SEED + 2)
    report = variance.write_variance_report(group, variance.load_sources(group))
    assert report["metrics"]["kitti_Cyclist_AP40_moderate"] == {"missing": ["v/init2"]}
    assert "Missing in v/init2." in (group / "variance.md").read_text()


@pytest.mark.parametrize("argv, fragment", [
    (["--vary", "init,order"], "--vary needs --repeat N with N >= 2"),
    (["--vary", "init", "--repeat", "2", "--seeds", "1,2"], "cannot be combined with --seeds"),
    (["--vary", "init,dropout", "--repeat", "2"], "subset of init,order,aug, got 'init,dropout' (unknown: dropout)"),
    (["--vary", "", "--repeat", "2"], "subset of init,order,aug"),
])
def test_train_refuses_a_bad_vary_before_training(tmp_path, argv, fragment):
    args = train.get_args_parser().parse_args([*argv, "--project", str(tmp_path / "runs")])
    with pytest.raises(UserError) as refused:
        train.main(args)
    assert fragment in str(refused.value)
    assert not (tmp_path / "runs").exists()

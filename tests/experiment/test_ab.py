"""experiment.ab on fabricated run directories: group checks, pairing by effective seeds, verdicts, the report."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest

from experiment import ab
from experiment.comparison import load_run
from training.config import TrainConfig, to_dict
from utils.errors import UserError
from utils.io import write_yaml

ENV = {"python": "3.11.7", "platform": "Linux", "torch": "2.14.1", "torchvision": "0.29.1", "numpy": "2.4.6",
       "opencv": "4.14.0", "cuda": None, "cudnn": None, "device": "cpu", "cpu": "test CPU", "cpu_count": 2,
       "gpu": None, "driver": None, "world_size": 1, "backend": None, "per_rank_batch": 8,
       "determinism": {"mode": "strict", "seed": 202003, "torch_threads": 2}}
KITTI = (60.0, 50.0, 40.0)  # AP40 moderate of Car, Pedestrian, Cyclist


def fake_run(folder: Path, coco50: float, kitti=KITTI, env: dict | None = None, evals=(), **config) -> Path:
    """A finished run directory: config.yaml of TrainConfig with ``config`` changed, env.json, two train records,
    the eval records ``evals`` ((step, COCO mAP@0.5) each), and summary.json whose final COCO mAP@0.5 is ``coco50``
    and KITTI AP40 moderate ``kitti`` (None: no GT)."""
    folder.mkdir(parents=True)
    write_yaml(folder / "config.yaml", to_dict(dataclasses.replace(TrainConfig(), **config)))
    (folder / "env.json").write_text(json.dumps(env or ENV))
    (folder / "metrics.jsonl").write_text("".join(
        json.dumps({"type": "train", "step": step, "total": 10.0 / step, "loss_f32": f"{step:08x}"}) + "\n"
        for step in (1, 2)) + "".join(json.dumps({"type": "eval", "step": step, "coco": {"mAP50": value}}) + "\n"
                                      for step, value in evals))
    digest = hashlib.sha256(f"{folder.name} {coco50} {sorted(config.items())}".encode()).hexdigest()
    final = {"coco": {"mAP": coco50 / 2, "mAP50": coco50, "per_class": {}},
             "kitti": {cls: {"AP40": {"easy": v, "moderate": v, "hard": v}, "AP11": {"easy": v, "moderate": v,
                                                                                     "hard": v}}
                       for cls, v in zip(("Car", "Pedestrian", "Cyclist"), kitti, strict=True)}}
    (folder / "summary.json").write_text(json.dumps({"weights_sha256": digest, "losses_sha256": digest[::-1],
                                                     "final": final}))
    return folder


def group(folder: Path, values: list[float], seeds=None, **config) -> list:
    """Runs r1.. of one configuration under ``folder``, run i with COCO mAP@0.5 values[i] and seed seeds[i]."""
    seeds = seeds or range(1, len(values) + 1)
    return [load_run(fake_run(folder / f"r{i}", v, seed=s, **config))
            for i, (v, s) in enumerate(zip(values, seeds, strict=True), start=1)]


BASE = [50.0, 50.4, 49.7, 50.2]


def test_same_seed_tuples_are_paired_in_seed_order(tmp_path):
    baseline = group(tmp_path / "a", BASE, seeds=[1, 2, 3, 4])
    candidate = group(tmp_path / "b", [53.1, 52.9, 53.4, 53.0], seeds=[3, 1, 4, 2], lr=0.004)
    a, b, paired = ab.pair_runs(baseline, candidate)
    assert paired
    assert [r.seed for r in a] == [r.seed for r in b] == [1, 2, 3, 4]
    result = ab.compare_ab(baseline, candidate, n_resamples=500)
    assert result["paired"] and result["metrics"]["coco_mAP50"]["difference"]["paired"]
    assert "Paired: both groups hold the same effective seeds" in ab.render_markdown(result)


def test_pairing_uses_the_effective_seeds(tmp_path):
    # seed 1 everywhere, written two ways: --seed 1, or --seed 9 with every source seed set to 1
    baseline = group(tmp_path / "a", BASE[:2], seeds=[1, 1])
    candidate = group(tmp_path / "b", BASE[:2], seeds=[9, 9], seed_init=1, seed_order=1, seed_aug=1)
    assert ab.pair_runs(baseline, candidate)[2]
    shifted = group(tmp_path / "c", BASE[:2], seeds=[1, 1], seed_aug=5)
    assert not ab.pair_runs(baseline, shifted)[2]


def test_different_seed_tuples_are_unpaired(tmp_path):
    baseline = group(tmp_path / "a", BASE, seeds=[1, 2, 3, 4])
    candidate = group(tmp_path / "b", BASE, seeds=[5, 6, 7, 8], lr=0.004)
    result = ab.compare_ab(baseline, candidate, n_resamples=500)
    assert not result["paired"]
    assert result["metrics"]["coco_mAP50"]["difference"]["method"] == "independent bootstrap of each group"
    assert "Unpaired" in ab.render_markdown(result)
    # three seeds shared out of four is not the same set: unpaired too
    assert not ab.pair_runs(baseline, group(tmp_path / "c", BASE, seeds=[1, 2, 3, 9]))[2]


def test_one_differing_key_is_the_intended_one(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    candidate = group(tmp_path / "b", BASE, lr=0.004, workers=2)  # workers is operational: not a difference
    result = ab.compare_ab(baseline, candidate, n_resamples=200)
    assert result["intended"] == {"lr": {"baseline": [0.002], "candidate": [0.004]}}
    assert result["forced"] == []


def test_other_data_is_one_difference_and_other_bytes_under_one_name_another(tmp_path):
    baseline = group(tmp_path / "a", BASE, data="/kitti_a", data_sha256="aa" * 32)
    candidate = group(tmp_path / "b", BASE, data="/kitti_b", data_sha256="bb" * 32)
    assert list(ab.compare_ab(baseline, candidate, n_resamples=200)["intended"]) == ["data"]
    edited = group(tmp_path / "c", BASE, data="/kitti_a", data_sha256="cc" * 32)  # same folder, a label changed
    assert list(ab.compare_ab(baseline, edited, n_resamples=200)["intended"]) == ["data_sha256"]


def test_groups_differing_beyond_the_intended_keys_are_refused_naming_them(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    candidate = group(tmp_path / "b", BASE, lr=0.004, momentum=0.8)
    with pytest.raises(UserError) as refused:
        ab.compare_ab(baseline, candidate)
    message = str(refused.value)
    assert "lr: 0.002 -> 0.004" in message and "momentum: 0.9 -> 0.8" in message
    assert "--intended lr,momentum" in message and "--force" in message
    with pytest.raises(UserError) as refused:
        ab.compare_ab(baseline, candidate, intended=["lr"])
    assert "momentum" in str(refused.value) and "lr: 0.002" not in str(refused.value)
    assert ab.compare_ab(baseline, candidate, intended=["lr", "momentum"], n_resamples=200)["forced"] == []
    forced = ab.compare_ab(baseline, candidate, force=True, n_resamples=200)
    assert forced["intended"] == {} and "momentum" in forced["forced"][0]
    assert "## Compared despite (--force)" in ab.render_markdown(forced)


def test_a_group_with_internal_differences_is_refused(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    odd = load_run(fake_run(tmp_path / "b" / "odd", 50.0, seed=4, lr=0.01))
    candidate = group(tmp_path / "b", BASE[:3], lr=0.004) + [odd]
    with pytest.raises(UserError, match=r"the candidate runs are not one configuration: they differ in lr: 0.004 "
                                        r"-> 0.01 \(b/r1 -> b/odd\)"):
        ab.compare_ab(baseline, candidate, intended=["lr"])
    assert ab.compare_ab(baseline, candidate, intended=["lr"], force=True, n_resamples=200)["forced"]


def test_runs_with_another_reproducibility_key_are_refused(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    candidate = [load_run(fake_run(tmp_path / "b" / f"r{i}", 50.0, seed=i, env={**ENV, "torch": "2.15.0"}))
                 for i in (1, 2)]
    with pytest.raises(UserError, match="reproducibility key .*env torch: .*'2.14.1'.*'2.15.0'"):
        ab.compare_ab(baseline, candidate)


def test_clear_improvement_is_better_and_noise_is_within_the_noise(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    better = group(tmp_path / "b", [v + 3.0 + d for v, d in zip(BASE, [0.1, -0.1, 0.05, 0.0], strict=True)], lr=0.004)
    result = ab.compare_ab(baseline, better)
    coco = result["metrics"]["coco_mAP50"]
    assert coco["verdict"].startswith("B is better than A by 3.01")
    assert coco["probability_of_improvement"] == 1.0
    md = ab.render_markdown(result)
    assert md.splitlines()[2].startswith("COCO mAP@0.5: B is better than A by 3.01")
    assert "| coco_mAP50 | 50.08 | 53.09 | +3.01 |" in md and "B better |" in md
    noise = group(tmp_path / "c", [50.3, 49.8, 50.1, 50.0], lr=0.004)
    result = ab.compare_ab(baseline, noise)
    assert "within the noise" in result["metrics"]["coco_mAP50"]["verdict"]
    assert result["metrics"]["coco_mAP50"]["seeds_needed"] > 2
    # KITTI is the same in every run of both groups: no difference, and the headline is the mean of the three
    assert result["metrics"][ab.HEADLINE_KEY]["baseline"]["mean"] == 50.0
    assert "| kitti_AP40_moderate_mean | 50.00 | 50.00 | +0.00 | 0.00 to 0.00 | 0.50 | 2 | no difference |" in \
        ab.render_markdown(result)


def test_a_metric_missing_in_a_run_is_reported_missing(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    candidate = group(tmp_path / "b", BASE[:3], lr=0.004) + [
        load_run(fake_run(tmp_path / "b" / "r4", 50.0, kitti=(60.0, 50.0, None), seed=4, lr=0.004))]
    result = ab.compare_ab(baseline, candidate, n_resamples=200)
    assert result["metrics"]["kitti_Cyclist_AP40_moderate"] == {"missing": ["b/r4"]}
    assert result["runs"]["candidate"][3][ab.HEADLINE_KEY] == 55.0  # mean of Car and Pedestrian only
    assert "| kitti_Cyclist_AP40_moderate | missing in b/r4 |" in ab.render_markdown(result)


def test_same_seed_same_report(tmp_path):
    baseline = group(tmp_path / "a", BASE)
    candidate = group(tmp_path / "b", [50.3, 49.8, 50.1, 50.0], lr=0.004)
    first = ab.compare_ab(baseline, candidate, n_resamples=1000)
    assert ab.compare_ab(baseline, candidate, n_resamples=1000) == first
    assert json.loads(json.dumps(first)) == first
    other = ab.compare_ab(baseline, candidate, n_resamples=1000, seed=1)
    assert other["metrics"]["coco_mAP50"] != first["metrics"]["coco_mAP50"] and other["seed"] == 1
    for out in ("x", "y"):
        (tmp_path / out).mkdir()
        ab.write_ab_report(tmp_path / out, first)
    assert (tmp_path / "x" / "ab_report.md").read_bytes() == (tmp_path / "y" / "ab_report.md").read_bytes()
    assert (tmp_path / "x" / "ab_runs.png").read_bytes() == (tmp_path / "y" / "ab_runs.png").read_bytes()


def test_group_folders_runs_and_the_default_report_folder(tmp_path):
    for i, v in enumerate([50.0, 50.2, 49.9], start=1):
        fake_run(tmp_path / "a" / f"r{10 ** (i - 1)}", v, seed=i)  # r1, r10, r100: natural order
    (tmp_path / "a" / "notes").mkdir()  # not a run: left out
    fake_run(tmp_path / "b" / "r1", 52.0, seed=1, lr=0.004)
    fake_run(tmp_path / "b" / "r2", 52.5, seed=2, lr=0.004)
    baseline = ab.load_group([tmp_path / "a"], "baseline")
    assert [r.path.name for r in baseline] == ["r1", "r10", "r100"]
    report = ab.run_ab([str(tmp_path / "a")], [str(tmp_path / "b" / "r1"), str(tmp_path / "b" / "r2")])
    assert report == tmp_path / "b" / "ab-report" / "ab_report.md"
    assert "95% CI" in report.read_text() and (report.parent / "ab_runs.png").stat().st_size > 0
    assert json.loads((report.parent / "ab_report.json").read_text())["paired"] is False
    ab.run_ab([str(tmp_path / "a")], [str(tmp_path / "b")])  # its own folder again: replaced


def test_bad_groups_and_flags_are_user_errors(tmp_path):
    one = fake_run(tmp_path / "one", 50.0)
    two = group(tmp_path / "b", BASE[:2], lr=0.004)
    with pytest.raises(UserError, match="--baseline holds 1 run; .*at least 2 runs"):
        ab.load_group([one], "baseline")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a finished run directory nor a folder"):
        ab.load_group([tmp_path / "empty"], "candidate")
    with pytest.raises(UserError, match="more than once"):
        ab.compare_ab(two, two)
    with pytest.raises(UserError, match="unknown learning_rate"):
        ab.parse_intended("lr,learning_rate")
    assert ab.parse_intended("seed-init, lr") == ["seed_init", "lr"]
    with pytest.raises(UserError, match="--delta"):
        ab.compare_ab(group(tmp_path / "a", BASE[:2]), two, delta=0.0)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    with pytest.raises(UserError, match="did not write"):
        ab.run_ab([str(tmp_path / "a")], [str(tmp_path / "b")], out=str(mine))
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


def test_steps_to_reach_a_map_are_compared_with_an_interval(tmp_path):
    """--reach 30: the first evaluation at COCO mAP@0.5 >= 30 of each run; B gets there sooner in every pair (by 80,
    160 and 80 steps), so the interval lies below 0 and P(B first) is 1."""
    curves_a = [[(80, 10.0), (160, 25.0), (240, 31.0)], [(80, 12.0), (160, 29.0), (240, 35.0)],
                [(80, 5.0), (160, 20.0), (240, 30.0)]]
    curves_b = [[(80, 20.0), (160, 33.0), (240, 40.0)], [(80, 30.5), (160, 35.0), (240, 41.0)],
                [(80, 15.0), (160, 30.0), (240, 38.0)]]
    a = [load_run(fake_run(tmp_path / "a" / f"r{i}", 40.0, seed=i, evals=c)) for i, c in enumerate(curves_a, 1)]
    b = [load_run(fake_run(tmp_path / "b" / f"r{i}", 45.0, seed=i, lr=0.001, evals=c))
         for i, c in enumerate(curves_b, 1)]
    result = ab.compare_ab(a, b, reach=30)["reach"]
    assert result["baseline"] == [240, 240, 240] and result["candidate"] == [160, 80, 160]
    d = result["difference"]
    assert d["difference"] == pytest.approx(-320 / 3) and d["ci_high"] < 0 and d["paired"]
    assert result["probability_candidate_first"] == 1.0
    md = ab.render_markdown(ab.compare_ab(a, b, reach=30))
    assert "Optimizer steps to COCO mAP@0.5 >= 30" in md and "| -106.7 |" in md and "B gets there sooner" in md
    never = ab.compare_ab(a, b, reach=50)["reach"]
    assert "difference" not in never and len(never["not_reached"]) == 6 and never["probability_candidate_first"] == 0.5
    # 35: only B's runs 1 and 2 get there (at 240 and 160); a run that never does counts as the slowest
    some = ab.compare_ab(a, b, reach=35)["reach"]
    assert some["baseline"] == [None, 240, None] and some["candidate"] == [240, 160, 240]
    assert some["probability_candidate_first"] == pytest.approx((2.5 + 3 + 2.5) / 9)  # per B run: vs never, 240, never
    md = ab.render_markdown(ab.compare_ab(a, b, reach=35))
    assert "A never, 240, never; B 240, 160, 240." in md and "Not reached by a/r1, a/r3" in md
    with pytest.raises(UserError, match="--reach is a COCO mAP@0.5 in percent"):
        ab.compare_ab(a, b, reach=0)
    import compare
    with pytest.raises(UserError, match="--reach belong to an A/B comparison"):
        compare.main(compare.get_args_parser().parse_args([str(tmp_path / "a"), str(tmp_path / "b"), "--reach", "30"]))

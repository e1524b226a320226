"""experiment/grid.py without training: the plan of a grid, finding the folder of the same plan again, and what
each run's folder says about it (finished, to resume, to start again)."""
from __future__ import annotations

import dataclasses
import json

import pytest

from experiment.grid import PLAN_FILE, GridSpec, open_group, plan_grid, run_state
from training.config import TrainConfig, to_dict
from utils.errors import UserError
from utils.io import write_yaml

CFG = TrainConfig()


def grid_args(**given) -> GridSpec:
    return GridSpec(**{"project": "runs", "name": "g", "vary": None, "seeds": "1,2", "repeat": 2, **given})


def test_the_plan_names_every_run_and_its_seed():
    kind, plan = plan_grid(grid_args(), CFG)
    assert kind == "repeat" and [(n, c.seed) for n, c in plan] == [("s1-r1", 1), ("s1-r2", 1), ("s2-r1", 2),
                                                                   ("s2-r2", 2)]
    kind, plan = plan_grid(grid_args(seeds=None, repeat=3), CFG)
    assert [n for n, _ in plan] == ["r1", "r2", "r3"] and {c.seed for _, c in plan} == {CFG.seed}
    kind, plan = plan_grid(grid_args(seeds=None, vary="init"), CFG)
    assert kind == "vary" and [n for n, _ in plan] == ["init1", "init2", "identical1", "identical2"]
    with pytest.raises(UserError, match="cannot be combined with --seeds"):
        plan_grid(grid_args(vary="init"), CFG)


def test_the_same_plan_finds_its_folder_and_another_plan_gets_a_new_one(tmp_path):
    _, plan = plan_grid(grid_args(), CFG)
    first = open_group(tmp_path, "g", CFG, "repeat", plan, log=lambda line: None)
    assert first == tmp_path / "g" and json.loads((first / PLAN_FILE).read_text())["runs"][0]["name"] == "s1-r1"
    lines = []
    again = [(n, dataclasses.replace(c, workers=2, cache="none")) for n, c in plan]  # operational keys only
    assert open_group(tmp_path, "g", CFG, "repeat", again, log=lines.append) == first
    assert lines == [f"grid {first}: the same plan as this command; resuming it"]
    other = [(n, dataclasses.replace(c, lr=0.001)) for n, c in plan]
    assert open_group(tmp_path, "g", CFG, "repeat", other, log=lambda line: None) == tmp_path / "g2"
    assert open_group(tmp_path, "g", CFG, "repeat", other, log=lambda line: None) == tmp_path / "g2"
    (tmp_path / "g3").mkdir()  # someone else's folder: never taken
    (tmp_path / "g4").mkdir()  # a grid of an older version, with a config key this one does not know
    (tmp_path / "g4" / PLAN_FILE).write_text(json.dumps({"kind": "repeat", "runs": [
        {"name": n, "config": {**to_dict(c), "burn_in": 100}} for n, c in plan[:2]]}))
    assert open_group(tmp_path, "g", CFG, "repeat", plan[:2], log=lambda line: None) == tmp_path / "g5"


def test_a_runs_folder_says_whether_it_finished_resumes_or_starts_again(tmp_path):
    run = tmp_path / "r1"
    assert run_state(run, CFG) == "fresh"
    run.mkdir()
    write_yaml(run / "config.yaml", to_dict(CFG))
    (run / "metrics.jsonl").write_text("")
    assert run_state(run, CFG) == "fresh" and not run.exists()  # stopped before its first checkpoint: started over
    run.mkdir()
    write_yaml(run / "config.yaml", to_dict(CFG))
    (run / "last.pt").write_bytes(b"checkpoint")
    assert run_state(run, CFG) == "resume"
    (run / "summary.json").write_text(json.dumps({"weights_sha256": "ab", "losses_sha256": "cd"}))
    assert run_state(run, CFG) == "done"
    with pytest.raises(UserError, match=r"holds a run of another config \(lr: 0.002 -> 0.01\)"):
        run_state(run, dataclasses.replace(CFG, lr=0.01))

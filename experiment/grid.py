"""The experiment of the reference post as a grid of runs: the same training repeated in fresh processes (--repeat,
--seeds) or one source of randomness varied at a time (--vary), then compared.

Each run is its own ``python train.py`` process, so no cuDNN autotuning cache, RNG or allocator state is shared:
differences between runs are the ones a user would see. The runs go through a launcher (experiment/launch.py): one
at a time, several at once (``--jobs``, one GPU each with ``--devices``), or as Ray tasks (``--launcher ray``).

A grid is resumable. Its folder holds ``grid.json``, the plan (every run's name and resolved config); running the
same grid command again finds that folder, skips every run that finished (summary.json, and the planned config),
resumes every run that has a ``last.pt``, starts the others, and writes the same report an uninterrupted grid writes.
"""
from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from experiment.comparison import load_run
from experiment.launch import Job, LaunchSpec, Outcome, launcher_for, python_command
from experiment.report import write_report
from experiment.statistics import IDENTICAL_SOURCE
from experiment.variance import (
    load_sources,
    parse_sources,
    plan_runs,
    write_variance_report,
)
from training.config import TrainConfig, config_differences, to_dict
from training.run_dir import new_run_dir, write_config
from utils.environment import select_device
from utils.errors import UserError
from utils.io import remove_stale_temporaries, write_json, write_yaml
from utils.lock import FolderLock, holder
from utils.progress import GridProgress

REPO = Path(__file__).resolve().parents[1]
TRAIN = REPO / "train.py"
PLAN_FILE = "grid.json"


def parse_seeds(text: str | None, default: int) -> list[int]:
    if not text:
        return [default]
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got {text!r}") from None
    if len(set(seeds)) != len(seeds) or not seeds:
        raise UserError(f"--seeds must list distinct seeds, got {text!r}")
    return seeds


@dataclass(frozen=True)
class GridSpec:
    """What a grid command asks for beside the runs' config (train.py builds it from its flags): where its folder
    goes, which runs it plans (``repeat`` runs of each seed of ``seeds``, or the sources of ``vary``), and how they
    are launched."""

    project: str | Path
    name: str
    repeat: int = 1
    seeds: str | None = None  # comma-separated; None: the config's seed
    vary: str | None = None  # comma-separated subset of init,order,aug
    launch: LaunchSpec = LaunchSpec()


def plan_grid(spec: GridSpec, cfg: TrainConfig) -> tuple[str, list[tuple[str, TrainConfig]]]:
    """(kind, [(run name, config), ...]): "vary" (experiment/variance.py's plan) or "repeat" (every seed of --seeds,
    --repeat times: r1, r2, ... for one seed, s<seed>-r<k> for several)."""
    if spec.vary is not None:
        if spec.seeds:
            raise UserError("--vary varies one source's seed around --seed; it cannot be combined with --seeds")
        if spec.repeat < 2:
            raise UserError(f"--vary needs --repeat N with N >= 2 (runs per source, to measure a spread), got "
                            f"{spec.repeat}")
        return "vary", plan_runs(cfg, parse_sources(spec.vary), spec.repeat)
    seeds = parse_seeds(spec.seeds, cfg.seed)
    return "repeat", [(f"r{k}" if len(seeds) == 1 else f"s{seed}-r{k}", dataclasses.replace(cfg, seed=seed))
                      for seed in seeds for k in range(1, spec.repeat + 1)]


def run_grid(spec: GridSpec, cfg: TrainConfig, log=print) -> dict:
    """Train every run of the grid under runs/NAME/ (a new folder, or the folder of this same grid, resumed), then
    write the comparison there (and variance.md for --vary). Failed runs are named with their logs at the end."""
    kind, plan = plan_grid(spec, cfg)
    launcher = launcher_for(spec.launch, select_device(cfg.device).type, cfg.threads, REPO, len(plan))
    group = open_group(spec.project, spec.name, cfg, kind, plan, log)
    with FolderLock(group, "grid folder"):  # one grid process at a time; the lock dies with its holder
        remove_stale_temporaries(group)
        failed = run_plan(group, plan, launcher, log)
        if failed:
            raise UserError(f"{len(failed)} of {len(plan)} runs failed: " + "; ".join(
                f"{name} (log: {group / (name + '.log')})" for name in failed)
                + "; the report is written once every run has finished: re-run the same command to retry them")
        return write_reports(kind, group, plan, log)


def open_group(project, name: str, cfg: TrainConfig, kind: str, plan, log=print) -> Path:
    """The grid's folder: ``project/name`` (or name2, ...) holding this same plan, else a new one with grid.json."""
    record = {"kind": kind, "runs": [{"name": n, "config": to_dict(c)} for n, c in plan]}
    for candidate in _taken_names(Path(project), name):
        if _same_plan(candidate / PLAN_FILE, record):
            log(f"grid {candidate}: the same plan as this command; resuming it")
            return candidate
    group = new_run_dir(project, name)
    write_config(group, to_dict(cfg))
    write_json(group / PLAN_FILE, record)
    return group


def _taken_names(project: Path, name: str):
    """``project/name``, ``name2``, ... as long as they exist (the names new_run_dir would have skipped)."""
    for i in range(1, 100000):
        path = project / (name if i == 1 else f"{name}{i}")
        if not path.exists():
            return
        yield path


def _same_plan(path: Path, record: dict) -> bool:
    """Does the grid.json at ``path`` hold the same kind, run names and configs (operational keys aside)?"""
    if not path.is_file():
        return False
    saved = json.loads(path.read_text())
    names = [r["name"] for r in saved.get("runs", [])]
    if saved.get("kind") != record["kind"] or names != [r["name"] for r in record["runs"]]:
        return False
    try:
        return not any(config_differences(a["config"], b["config"]) for a, b in zip(saved["runs"], record["runs"]))
    except UserError:  # a plan of another version of the repo (config keys it no longer knows): not this grid
        return False


def run_plan(group: Path, plan, launcher, log=print) -> list[str]:
    """Launch every run of ``plan`` that has not finished; returns the names of the runs that failed."""
    states = {name: run_state(group / name, run_cfg) for name, run_cfg in plan}
    todo = [(name, run_cfg) for name, run_cfg in plan if states[name] != "done"]
    resumed = [name for name, _ in todo if states[name] == "resume"]
    log(f"grid {group}: {len(plan)} runs, {len(plan) - len(todo)} finished before, "
        f"{len(resumed)} to resume{' (' + ', '.join(resumed) + ')' if resumed else ''}, "
        f"{len(todo) - len(resumed)} to start; each run's output goes to {group}/NAME.log")
    progress = GridProgress(len(plan), len(plan) - len(todo), log)
    failed = []

    def on_done(outcome: Outcome) -> None:
        if outcome.returncode:
            failed.append(outcome.name)
        progress.finished(_outcome_line(group, outcome))
    try:
        launcher.run([_job(group, name, run_cfg, states[name]) for name, run_cfg in todo], on_done)
    finally:
        progress.close()
    return [name for name, _ in plan if name in failed]


def run_state(run_dir: Path, cfg: TrainConfig) -> str:
    """"done" (summary.json with fingerprints), "resume" (a last.pt) or "fresh". A folder of another config is an
    error; a folder of this config with neither (stopped before its first checkpoint) is removed to start over."""
    if not run_dir.exists():
        return "fresh"
    pid = holder(run_dir)
    if pid is not None:
        raise UserError(f"{run_dir}: this run is being trained by process {pid} (a run of an earlier grid command "
                        f"still going); wait for it to end or stop it (kill {pid}), then run the grid command again")
    saved = run_dir / "config.yaml"
    if saved.is_file():
        changed = config_differences(yaml.safe_load(saved.read_text()), to_dict(cfg))
        if changed:
            raise UserError(f"{run_dir}: holds a run of another config ({'; '.join(changed)}), not this grid's; "
                            "move it away, or give the grid another --name")
    summary = run_dir / "summary.json"
    if summary.is_file() and "weights_sha256" in json.loads(summary.read_text()):
        return "done"
    if (run_dir / "last.pt").is_file():
        return "resume"
    shutil.rmtree(run_dir)  # this grid's own run, stopped before it wrote a checkpoint: nothing to keep
    return "fresh"


def _job(group: Path, name: str, cfg: TrainConfig, state: str) -> Job:
    """The child command: a fresh run from its fully resolved config (written beside it), or its resumption."""
    if state == "resume":
        args = ["--resume", str(group / name / "last.pt")]
    else:
        preset = group / f"{name}.yaml"
        write_yaml(preset, to_dict(cfg))
        args = ["--config", str(preset), "--project", str(group), "--name", name]
    return Job(name, python_command(str(TRAIN), *args), group / f"{name}.log")


def _outcome_line(group: Path, outcome: Outcome) -> str:
    """``r3: 41.2 s, COCO mAP@0.5 55.13, weights 2f53151e06a0``, or the failure with its log and error line."""
    if outcome.returncode:
        log = group / f"{outcome.name}.log"
        errors = [line for line in log.read_text(errors="replace").splitlines() if ": error:" in line]
        return (f"{outcome.name}: FAILED (exit {outcome.returncode}) after {outcome.seconds:.1f} s, log: {log}"
                + (f" ({errors[-1].strip()})" if errors else ""))
    summary = json.loads((group / outcome.name / "summary.json").read_text())
    map50 = ((summary.get("final") or {}).get("coco") or {}).get("mAP50")
    return (f"{outcome.name}: {outcome.seconds:.1f} s, COCO mAP@0.5 "
            f"{'n/a' if map50 is None else f'{map50:.2f}'}, weights {summary['weights_sha256'][:12]}")


def write_reports(kind: str, group: Path, plan, log=print) -> dict:
    """report.md (and, for --vary, variance.md) of a finished grid, printed too."""
    if kind == "vary":
        by_source = load_sources(group)
        result = {"comparison": write_report(group, by_source[IDENTICAL_SOURCE]),
                  "variance": write_variance_report(group, by_source)}
        log((group / "report.md").read_text())
        log((group / "variance.md").read_text())
        log(f"reports: {group / 'report.md'}, {group / 'variance.md'}")
        return result
    result = write_report(group, [load_run(group / name) for name, _ in plan])
    log((group / "report.md").read_text())
    log(f"report: {group / 'report.md'}")
    return result

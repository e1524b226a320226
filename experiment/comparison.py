"""Compare repeated runs: bitwise identity, the first divergent step, loss differences, and the metric spread.

Runs are read from their directories (config.yaml, env.json, metrics.jsonl, summary.json). Two runs are
comparable when their configs agree on every key but ``seed`` and their environments share the reproducibility
key (utils.environment.reproducibility_key: software, device, threads, world size, per-rank batch, mode).
"""
from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass
from pathlib import Path

import yaml

from data.identity import MANIFEST, first_difference, read_manifest
from training.config import (
    OPERATIONAL_KEYS,
    SEED_SOURCES,
    config_differences,
    from_dict,
    source_seed,
)
from training.run_dir import read_metrics
from utils.environment import reproducibility_key
from utils.errors import UserError

SEED_KEYS = ("seed",) + tuple(f"seed_{s}" for s in SEED_SOURCES)  # may differ between runs that are compared


@dataclass(frozen=True)
class RunRecord:
    path: Path
    config: dict
    env: dict
    train: list[dict]  # one metrics record per optimizer step, in step order
    summary: dict
    evals: tuple = ()  # the metrics records of its evaluations, in step order

    @property
    def seeds(self) -> tuple[int, ...]:
        """The seed each source of randomness used: (init, order, aug)."""
        cfg = from_dict(self.config)
        return tuple(source_seed(cfg, s) for s in SEED_SOURCES)

    @property
    def seed(self):
        """What identifies the run's randomness: ``--seed``, or the per-source seeds when one was set apart."""
        seeds = self.seeds
        return self.config["seed"] if set(seeds) == {self.config["seed"]} else seeds

    @property
    def name(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def load_run(path: str | Path) -> RunRecord:
    """Read a finished run directory; a missing file is named in the error."""
    path = Path(path)
    for name in ("config.yaml", "env.json", "metrics.jsonl", "summary.json"):
        if not (path / name).is_file():
            raise UserError(f"{path}: not a finished run directory (no {name})")
    with open(path / "config.yaml") as f:
        config = yaml.safe_load(f)
    records = read_metrics(path / "metrics.jsonl")
    return RunRecord(path, config, json.loads((path / "env.json").read_text()),
                     [r for r in records if r.get("type") == "train"],
                     json.loads((path / "summary.json").read_text()),
                     tuple(r for r in records if r.get("type") == "eval"))


def incompatibilities(runs: list[RunRecord]) -> list[str]:
    """Differing config keys (seed and operational keys aside, e.g. --max-steps or --workers, which do not change
    what a run computes), data (``data ...``: the first differing file) and environment keys against the first run,
    one line each."""
    first = runs[0]
    problems = []
    for other in runs[1:]:
        for line in config_differences(first.config, other.config, ignore=OPERATIONAL_KEYS + SEED_KEYS
                                       + ("data_sha256",)):
            problems.append(f"config {line} ({first.name} -> {other.name})")
        data = data_difference(first, other)
        if data:
            problems.append(f"data {data}")
        a, b = reproducibility_key(first.env), reproducibility_key(other.env)
        for key in sorted(a):
            if a[key] != b.get(key):
                problems.append(f"env {key}: {first.name}={a[key]!r} {other.name}={b.get(key)!r}")
    return problems


def data_difference(a: RunRecord, b: RunRecord) -> str | None:
    """How the data two runs read differ (the first differing file, from their data_manifest.tsv), or None: the
    same data_sha256, or one run recorded none (a run of an older version)."""
    sha_a, sha_b = a.config.get("data_sha256"), b.config.get("data_sha256")
    if not (sha_a and sha_b) or sha_a == sha_b:
        return None
    manifests = [r.path / MANIFEST for r in (a, b)]
    if not all(m.is_file() for m in manifests):
        return f"data_sha256 {sha_a[:12]}... ({a.name}) vs {sha_b[:12]}... ({b.name})"
    return first_difference(*map(read_manifest, manifests), a.name, b.name)


def first_divergence(a: RunRecord, b: RunRecord) -> int | None:
    """First optimizer step whose loss bits or parameter fingerprint differ (None: no difference seen).

    A parameter fingerprint is recorded every few steps, so an update difference that the losses have not shown
    yet is caught at the next fingerprinted step.
    """
    for ra, rb in zip(a.train, b.train):
        if ra["loss_f32"] != rb["loss_f32"] or ra.get("fingerprint") != rb.get("fingerprint"):
            return ra["step"]
    if len(a.train) != len(b.train):
        return min(len(a.train), len(b.train)) + 1
    return None


def loss_differences(a: RunRecord, b: RunRecord) -> list[float]:
    """Per-step total loss of ``b`` minus that of ``a``, over the steps both ran."""
    return [rb["total"] - ra["total"] for ra, rb in zip(a.train, b.train)]


def run_metrics(run: RunRecord) -> dict[str, float | None]:
    """The final metrics of a run, flattened: COCO mAP, mAP50, and KITTI AP40/AP11 per class and difficulty."""
    final = run.summary.get("final") or {}
    out = {"coco_mAP": final.get("coco", {}).get("mAP"), "coco_mAP50": final.get("coco", {}).get("mAP50")}
    for cls, kinds in (final.get("kitti") or {}).items():
        for kind, levels in kinds.items():
            for level, value in levels.items():
                out[f"kitti_{cls}_{kind}_{level}"] = value
    return out


def spread(values: list[float | None]) -> dict:
    """Mean, sample standard deviation and min-max range of the values that exist."""
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return {"n": 0, "mean": None, "std": None, "min": None, "max": None, "range": None}
    return {"n": len(vals), "mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0,
            "min": min(vals), "max": max(vals), "range": max(vals) - min(vals)}


def compare(runs: list[RunRecord]) -> dict:
    """The comparison of report.json: identity, divergence against the first run of each seed, metric spread."""
    by_seed: dict[int, list[RunRecord]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    pairs = []
    for seed_runs in by_seed.values():
        ref = seed_runs[0]
        for other in seed_runs[1:]:
            diffs = loss_differences(ref, other)
            pairs.append({"seed": ref.seed, "a": ref.name, "b": other.name,
                          "weights_identical": ref.summary["weights_sha256"] == other.summary["weights_sha256"],
                          "losses_identical": ref.summary["losses_sha256"] == other.summary["losses_sha256"],
                          "first_divergent_step": first_divergence(ref, other),
                          "max_abs_loss_diff": max((abs(d) for d in diffs), default=0.0)})
    metrics = {run.name: run_metrics(run) for run in runs}
    names = sorted({k for m in metrics.values() for k in m})
    return {
        "runs": [{"name": r.name, "seed": r.seed, "weights_sha256": r.summary["weights_sha256"],
                  "losses_sha256": r.summary["losses_sha256"], "steps": len(r.train)} for r in runs],
        "bitwise_identical": all(p["weights_identical"] and p["losses_identical"] for p in pairs) if pairs else None,
        "pairs": pairs,
        "metrics": metrics,
        "within_seed": {n: _within_seed(by_seed, metrics, n) for n in names},
        "across_seeds": {n: spread([spread([metrics[r.name][n] for r in rs])["mean"] for rs in by_seed.values()])
                         for n in names} if len(by_seed) > 1 else None,
    }


def seed_label(seed) -> str:
    """A run's seed as a report key: ``--seed``, or ``init/order/aug`` when the sources' seeds were set apart (a
    JSON object key must be a string, and a tuple of seeds is not one)."""
    return "/".join(map(str, seed)) if isinstance(seed, tuple) else str(seed)


def _within_seed(by_seed: dict, metrics: dict, name: str) -> dict:
    """Spread within each seed (run-to-run nondeterminism); the largest standard deviation over seeds is kept."""
    per_seed = {seed_label(seed): spread([metrics[r.name].get(name) for r in rs]) for seed, rs in by_seed.items()}
    stds = [s["std"] for s in per_seed.values() if s["std"] is not None]
    return {"per_seed": per_seed, "max_std": max(stds) if stds else None}

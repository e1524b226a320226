"""A/B comparison of two groups of runs: does the candidate (B) beat the baseline (A), or is it noise?

``compare.py --baseline RUNS... --candidate RUNS...``: each group is one configuration repeated over seeds. The
groups are checked first (every run of a group has the same config, seeds and operational keys aside; between the
groups only the intended keys differ; every run has the same reproducibility key), then paired by their effective
seeds when both groups hold the same seed tuples, then compared per metric with
experiment.statistics.compare_groups: difference with a bootstrap interval, P(B > A), seeds needed, verdict.
"""
from __future__ import annotations

import dataclasses
import math
import re
import statistics
from collections import Counter
from pathlib import Path

from evaluation.metrics import HEADLINE_CLASSES, HEADLINE_NAME
from experiment import figures
from experiment.comparison import (
    SEED_KEYS,
    RunRecord,
    incompatibilities,
    load_run,
    run_metrics,
)
from experiment.report import HEADLINE_METRICS, fmt
from experiment.statistics import (
    REPORT_POWER,
    REPORT_RESAMPLES,
    REPORT_SEED,
    compare_groups,
    mean_difference,
    probability_of_improvement,
)
from training.config import (
    DATA_KEYS,
    OPERATIONAL_KEYS,
    TrainConfig,
    config_differences,
    from_dict,
    to_dict,
)
from utils.errors import UserError
from utils.io import claim_output_dir, write_json, write_text

IGNORED_KEYS = OPERATIONAL_KEYS + SEED_KEYS  # may differ inside a group and between groups
HEADLINE_KEY = "kitti_AP40_moderate_mean"  # HEADLINE_NAME over the classes a run has
AB_METRICS = HEADLINE_METRICS + (HEADLINE_KEY,)
CONFIDENCE = 0.95
REPORT_DIR = "ab-report"
TOOL = "compare.py"


def run_dirs(item: str | Path) -> list[Path]:
    """``item`` if it is a finished run directory, else its immediate subfolders that are, in natural order
    (r2 before r10)."""
    item = Path(item)
    # summary.json is written last, when a run has finished (as experiment.reproduce reads it)
    if (item / "summary.json").is_file():
        return [item]
    found = [p for p in item.iterdir() if (p / "summary.json").is_file()] if item.is_dir() else []
    if not found:
        raise UserError(f"{item}: neither a finished run directory nor a folder holding finished runs (no "
                        "summary.json in it or in its subfolders)")
    return sorted(found, key=lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)])


def load_group(items: list[str | Path], role: str) -> list[RunRecord]:
    """The finished runs of every run directory or group folder in ``items``; at least 2 (a spread needs them)."""
    runs = [load_run(path) for item in items for path in run_dirs(item)]
    if len(runs) < 2:
        raise UserError(f"--{role} holds {len(runs)} run; an A/B comparison needs at least 2 runs per group to "
                        "measure the run-to-run spread")
    return runs


def parse_intended(text: str | None) -> list[str] | None:
    """``--intended KEY,...`` -> config key names (dashes read as underscores); None when not given."""
    if text is None:
        return None
    keys = [k.strip().replace("-", "_") for k in text.split(",") if k.strip()]
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = [k for k in keys if k not in known]
    if unknown or not keys:
        raise UserError(f"--intended expects comma-separated config keys (as in config.yaml, e.g. lr), got {text!r}"
                        + (f": unknown {', '.join(unknown)}" if unknown else ""))
    return keys


def _differences(a: RunRecord, b: RunRecord) -> list[tuple[str, str]]:
    """(key, 'key: a -> b') of every config key outside IGNORED_KEYS whose values differ; data_sha256 only where no
    key naming the data differs (other data named has other bytes: one difference, not two)."""
    found = [(line.split(":", 1)[0], line) for line in config_differences(a.config, b.config, ignore=IGNORED_KEYS)]
    named = any(key in DATA_KEYS for key, _ in found)
    return [(key, line) for key, line in found if not (named and key == "data_sha256")]


def check_groups(baseline: list[RunRecord], candidate: list[RunRecord], intended: list[str] | None,
                 force: bool) -> tuple[list[str], list[str]]:
    """Refuse groups that are not one configuration each, that differ in more than the intended keys, or whose runs
    have different reproducibility keys; with ``force`` go on and return the problems instead.

    intended: the keys meant to differ; None: the differing key, if exactly one differs. Returns (intended keys,
    problems passed with ``force``).
    """
    problems = []
    for role, runs in (("baseline", baseline), ("candidate", candidate)):
        inside = [f"{line} ({runs[0].name} -> {other.name})" for other in runs[1:]
                  for _, line in _differences(runs[0], other)]
        if inside:
            problems.append(f"the {role} runs are not one configuration: they differ in {'; '.join(inside)}; "
                            "leave out the odd runs, or pass --force to compare anyway.")
    between = _differences(baseline[0], candidate[0])
    if intended is None:
        intended = [key for key, _ in between] if len(between) == 1 else []
    extra = [(key, line) for key, line in between if key not in intended]
    if extra:
        keys = ",".join(intended + [key for key, _ in extra])
        problems.append(f"baseline and candidate differ in {'; '.join(line for _, line in extra)} beyond the "
                        f"intended key(s) ({', '.join(intended) or 'none'}); name every key you changed with "
                        f"--intended {keys}, or pass --force to compare anyway.")
    env = [p for p in incompatibilities(baseline + candidate) if p.startswith("env ")]
    if env:
        problems.append(f"the runs differ in their reproducibility key ({'; '.join(env)}), so their numbers are "
                        "not comparable; pass --force to compare anyway.")
    if problems and not force:
        raise UserError(" ".join(problems))
    return intended, problems


def pair_runs(baseline: list[RunRecord], candidate: list[RunRecord]) -> tuple[list, list, bool]:
    """Both groups sorted by effective seeds (entry i of both then shares every seed) and True when they hold the
    same seed tuples, each as often; else both groups unchanged and False. Equal tuples keep their given order."""
    seeds_a, seeds_b = [r.seeds for r in baseline], [r.seeds for r in candidate]
    if Counter(seeds_a) != Counter(seeds_b):
        return baseline, candidate, False
    order = [sorted(range(len(s)), key=s.__getitem__) for s in (seeds_a, seeds_b)]
    return [baseline[i] for i in order[0]], [candidate[i] for i in order[1]], True


def ab_metrics(run: RunRecord) -> dict[str, float | None]:
    """The compared final metrics of a run (percent): HEADLINE_METRICS, and HEADLINE_KEY, the mean of the KITTI AP40
    moderate of Car, Pedestrian and Cyclist that exist (None when none does)."""
    flat = run_metrics(run)
    kitti = [flat.get(f"kitti_{c}_AP40_moderate") for c in HEADLINE_CLASSES]
    kitti = [v for v in kitti if v is not None]
    return {**{k: flat.get(k) for k in HEADLINE_METRICS}, HEADLINE_KEY: statistics.fmean(kitti) if kitti else None}


def steps_to_reach(run: RunRecord, threshold: float) -> int | None:
    """The first evaluated optimizer step at which the run's COCO mAP@0.5 (percent) is >= ``threshold``; None when
    no evaluation reaches it. Resolution: the run's evaluation interval."""
    for record in run.evals:
        value = (record.get("coco") or {}).get("mAP50")
        if value is not None and value >= threshold:
            return int(record["step"])
    return None


def compare_reach(baseline: list[RunRecord], candidate: list[RunRecord], paired: bool, threshold: float,
                  seed: int = REPORT_SEED, n_resamples: int = REPORT_RESAMPLES) -> dict:
    """Optimizer steps to COCO mAP@0.5 >= threshold, B against A: the steps of every run (None: never got there;
    ``not_reached`` names those runs), P(B gets there first) counting a run that never did as the slowest, and, when
    every run got there, the difference B - A with its interval."""
    if not (math.isfinite(threshold) and 0 < threshold <= 100):
        raise UserError(f"--reach is a COCO mAP@0.5 in percent, in (0, 100], got {threshold}")
    a, b = [steps_to_reach(r, threshold) for r in baseline], [steps_to_reach(r, threshold) for r in candidate]
    # fewer steps is better: P(B first) is the probability of improvement of the negated step counts, a run that
    # never got there ranked behind every run that did
    never = 1 + max((v for v in a + b if v is not None), default=0)
    first = probability_of_improvement([-(never if v is None else v) for v in a],
                                       [-(never if v is None else v) for v in b])
    result = {"threshold": float(threshold), "baseline": a, "candidate": b, "probability_candidate_first": first,
              "not_reached": [r.name for r, v in zip(baseline + candidate, a + b, strict=True) if v is None]}
    if result["not_reached"]:
        return result
    return {**result, "difference": mean_difference(a, b, paired, CONFIDENCE, n_resamples, seed)}


def compare_ab(baseline: list[RunRecord], candidate: list[RunRecord], intended: list[str] | None = None,
               delta: float = 1.0, force: bool = False, seed: int = REPORT_SEED,
               n_resamples: int = REPORT_RESAMPLES, reach: float | None = None) -> dict:
    """The A/B report (ab_report.json): check_groups, pair_runs, then compare_groups per metric of AB_METRICS
    (``{"missing": [run names]}`` for a metric some run lacks). delta: the difference worth detecting, in points.
    reach: also compare the optimizer steps each run took to reach this COCO mAP@0.5 (compare_reach)."""
    if not (math.isfinite(delta) and delta > 0):
        raise UserError(f"--delta must be a positive number of points, got {delta}")
    names = [str(r.path.resolve()) for r in baseline + candidate]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise UserError(f"run(s) given more than once (a run belongs to one group): {', '.join(twice)}")
    intended, forced = check_groups(baseline, candidate, intended, force)
    baseline, candidate, paired = pair_runs(baseline, candidate)
    values = {"baseline": [ab_metrics(r) for r in baseline], "candidate": [ab_metrics(r) for r in candidate]}
    metrics = {}
    for key in AB_METRICS:
        a, b = [m[key] for m in values["baseline"]], [m[key] for m in values["candidate"]]
        missing = [r.name for r, v in zip(baseline + candidate, a + b, strict=True) if v is None]
        metrics[key] = {"missing": missing} if missing else compare_groups(a, b, paired, delta, CONFIDENCE,
                                                                           n_resamples, seed)
    return {"paired": paired, "intended": {k: {role: _values(runs, k) for role, runs in
                                               (("baseline", baseline), ("candidate", candidate))} for k in intended},
            "forced": forced, "delta": float(delta), "confidence": CONFIDENCE, "power": REPORT_POWER, "seed": seed,
            "n_resamples": n_resamples, "metrics": metrics,
            "reach": None if reach is None else compare_reach(baseline, candidate, paired, reach, seed, n_resamples),
            "runs": {role: [_run_entry(r, m) for r, m in zip(runs, values[role], strict=True)]
                     for role, runs in (("baseline", baseline), ("candidate", candidate))}}


def _values(runs: list[RunRecord], key: str) -> list:
    """The distinct values of config ``key`` in ``runs``, in first-seen order."""
    seen = []
    for run in runs:
        value = to_dict(from_dict(run.config))[key]
        if value not in seen:
            seen.append(value)
    return seen


def _run_entry(run: RunRecord, metrics: dict) -> dict:
    return {"name": run.name, "path": str(run.path), "seeds": list(run.seeds),
            "weights_sha256": run.summary["weights_sha256"], **metrics}


def _short_verdict(entry: dict) -> str:
    d = entry["difference"]
    if d["ci_low"] == d["ci_high"] == d["difference"] == 0.0:
        return "no difference"
    return "B better" if d["ci_low"] > 0 else "B worse" if d["ci_high"] < 0 else "within the noise"


def render_markdown(result: dict) -> str:
    """ab_report.md: the verdict on COCO mAP@0.5, a row per metric, the pairing, the intended change, the runs."""
    coco = result["metrics"]["coco_mAP50"]
    level = f"{result['confidence'] * 100:g}%"
    lines = ["# A/B comparison: candidate (B) against baseline (A)", "",
             "COCO mAP@0.5: " + (coco["verdict"] if "verdict" in coco else
                                 f"missing in {', '.join(coco['missing'])}; no verdict."), "",
             f"| metric (percent) | mean A | mean B | difference B - A | {level} CI | P(B>A) | seeds needed ("
             f"{result['delta']:g}-point difference) | verdict |", "|---|---|---|---|---|---|---|---|"]
    for key, entry in result["metrics"].items():
        if "missing" in entry:
            lines.append(f"| {key} | missing in {', '.join(entry['missing'])} | | | | | | |")
            continue
        d = entry["difference"]
        lines.append(f"| {key} | {fmt(entry['baseline']['mean'], 2)} | {fmt(entry['candidate']['mean'], 2)} | "
                     f"{fmt(d['difference'], 2, sign='+')} | {fmt(d['ci_low'], 2)} to {fmt(d['ci_high'], 2)} | "
                     f"{entry['probability_of_improvement']:.2f} | {entry['seeds_needed']} | "
                     f"{_short_verdict(entry)} |")
    if result.get("reach"):
        lines += [""] + _reach_lines(result["reach"], level)
    lines += ["", f"{HEADLINE_KEY}: {HEADLINE_NAME}. Verdict: B better or worse when the {level} interval of the "
              f"difference excludes 0, else within the noise. Seeds needed: runs per group for a two-sided test at "
              f"the {100 - result['confidence'] * 100:g}% level to detect a {result['delta']:g}-point difference at "
              f"{result['power'] * 100:g}% power with the measured spread. Intervals: expanded percentile bootstrap, "
              f"{result['n_resamples']} resamples, seed {result['seed']} (experiment/statistics.py).", "",
              "## Pairing", "", _pairing_text(result), "", "## Intended change", ""]
    if result["intended"]:
        lines += ["| key | baseline (A) | candidate (B) |", "|---|---|---|"]
        lines += [f"| {k} | {', '.join(map(str, v['baseline']))} | {', '.join(map(str, v['candidate']))} |"
                  for k, v in result["intended"].items()]
    else:
        lines.append("None: the groups have the same config, seeds and operational keys aside.")
    if result["forced"]:
        lines += ["", "## Compared despite (--force)", ""] + [f"- {p}" for p in result["forced"]]
    lines += ["", "## Runs", "", "| group | run | seeds (init, order, aug) | weights_sha256 | coco_mAP50 | "
              f"{HEADLINE_KEY} |", "|---|---|---|---|---|---|"]
    for role, runs in result["runs"].items():
        lines += [f"| {role} | {r['name']} | {', '.join(map(str, r['seeds']))} | `{r['weights_sha256'][:16]}` | "
                  f"{fmt(r['coco_mAP50'], 2)} | {fmt(r[HEADLINE_KEY], 2)} |" for r in runs]
    lines += ["", "Figure: `ab_runs.png` (COCO mAP@0.5 of every run" + (", pairs joined)." if result["paired"]
                                                                         else ")."), ""]
    return "\n".join(lines)


def _reach_lines(reach: dict, level: str) -> list[str]:
    """The steps-to-mAP section of ab_report.md."""
    steps = {role: ", ".join("never" if v is None else str(v) for v in reach[role]) for role in ("baseline",
                                                                                                 "candidate")}
    lines = [f"Optimizer steps to COCO mAP@0.5 >= {reach['threshold']:g} (first evaluation that reaches it): A "
             f"{steps['baseline']}; B {steps['candidate']}."]
    if reach["not_reached"]:
        return lines + ["", f"Not reached by {', '.join(reach['not_reached'])}: no mean difference can be estimated. "
                        f"P(B first) = {reach['probability_candidate_first']:.2f}, counting a run that never got "
                        "there as the slowest."]
    d = reach["difference"]
    verdict = ("B gets there sooner" if d["ci_high"] < 0 else "B gets there later" if d["ci_low"] > 0
               else "within the noise")
    return lines + ["", f"| mean A | mean B | difference B - A | {level} CI | P(B first) | verdict |",
                    "|---|---|---|---|---|---|",
                    f"| {statistics.fmean(reach['baseline']):.1f} | {statistics.fmean(reach['candidate']):.1f} | "
                    f"{d['difference']:+.1f} | {d['ci_low']:.1f} to {d['ci_high']:.1f} | "
                    f"{reach['probability_candidate_first']:.2f} | {verdict} |"]


def _pairing_text(result: dict) -> str:
    if result["paired"]:
        return ("Paired: both groups hold the same effective seeds (init, order, aug), so run i of A and run i of B "
                "share every seed; the difference is taken per pair, which cancels the noise the pair shares.")
    return ("Unpaired: the groups do not hold the same effective seeds (init, order, aug); each group is resampled "
            "on its own.")


def write_ab_report(out_dir: str | Path, result: dict) -> Path:
    """``result`` (compare_ab) as ab_report.json, ab_report.md and ab_runs.png in ``out_dir``."""
    out = Path(out_dir)
    write_json(out / "ab_report.json", result)
    figures.plot_ab_runs([r["coco_mAP50"] for r in result["runs"]["baseline"]],
                         [r["coco_mAP50"] for r in result["runs"]["candidate"]], result["paired"], "coco_mAP50",
                         out / "ab_runs.png")
    write_text(out / "ab_report.md", render_markdown(result))
    return out / "ab_report.md"


def run_ab(baseline_items: list[str], candidate_items: list[str], out: str | None = None,
           intended: str | None = None, delta: float = 1.0, force: bool = False, reach: float | None = None) -> Path:
    """compare.py's A/B mode: load both groups, compare them, and write the report into ``out`` (default: a folder
    ab-report beside the first candidate run), a new folder or one compare.py wrote before. Returns ab_report.md."""
    baseline, candidate = load_group(baseline_items, "baseline"), load_group(candidate_items, "candidate")
    result = compare_ab(baseline, candidate, parse_intended(intended), delta, force, reach=reach)
    # claimed only now, so that a refused comparison leaves no folder behind
    folder = claim_output_dir(out or candidate[0].path.parent / REPORT_DIR, TOOL,
                              inputs=[r.path for r in baseline + candidate])
    return write_ab_report(folder, result)

"""How much of the run-to-run spread of the final metrics each source of randomness causes on its own.

``train.py --vary init,order,aug --repeat N`` trains, for each source S, N runs in which only seed_S moves
(seed + 1 .. seed + N; run directories S1..SN) and N runs with every seed at --seed (identical1..identicalN: the
noise left when no seed changes, 0 in strict mode), each in a fresh process. This module plans those runs, reads
them back from the group folder by name, and writes variance.json, variance.md and variance_by_source.png there.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from experiment import figures
from experiment.comparison import RunRecord, load_run, run_metrics
from experiment.report import HEADLINE_METRICS, fmt
from experiment.statistics import (
    IDENTICAL_SOURCE,
    REPORT_POWER,
    REPORT_RESAMPLES,
    REPORT_SEED,
    seeds_needed,
    summarize_group,
    variance_by_source,
)
from training.config import SEED_SOURCES, TrainConfig, validate
from utils.errors import UserError
from utils.io import write_json, write_text

SIZE_METRIC = "coco_mAP50"  # the metric of the summary sentence and the figure
SIZE_DELTA = 1.0  # points: the difference the summary sentence sizes the seeds for
ALL_SOURCES = SEED_SOURCES + (IDENTICAL_SOURCE,)
_RUN_NAME = re.compile(rf"({'|'.join(ALL_SOURCES)})([1-9][0-9]*)")


def parse_sources(text: str) -> list[str]:
    """``--vary`` text (comma-separated subset of init,order,aug) -> the sources in the order given."""
    sources = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in sources if s not in SEED_SOURCES]
    if unknown or not sources:
        raise UserError(f"--vary expects a comma-separated subset of {','.join(SEED_SOURCES)}, got {text!r}"
                        + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    if len(set(sources)) != len(sources):
        raise UserError(f"--vary names a source twice: {text!r}")
    return sources


def plan_runs(cfg: TrainConfig, sources: list[str], repeat: int) -> list[tuple[str, TrainConfig]]:
    """(run name, config) of every run of the grid: for each source S, ``repeat`` runs S1.. with seed_S = seed + k
    and every other seed at --seed, then ``repeat`` runs identical1.. with every seed at --seed."""
    # -1 means "use --seed": a source seed the preset or a flag set would otherwise vary as well
    at_seed = dataclasses.replace(cfg, **{f"seed_{s}": -1 for s in SEED_SOURCES})
    plan = [(f"{s}{k}", dataclasses.replace(at_seed, **{f"seed_{s}": cfg.seed + k}))
            for s in sources for k in range(1, repeat + 1)]
    plan += [(f"{IDENTICAL_SOURCE}{k}", at_seed) for k in range(1, repeat + 1)]
    return [(name, validate(run_cfg)) for name, run_cfg in plan]


def load_sources(group: str | Path) -> dict[str, list[RunRecord]]:
    """The runs of a ``--vary`` group folder by source (init, order, aug, identical; those present, in that order),
    each source's runs in index order."""
    group = Path(group)
    found: dict[str, list[tuple[int, RunRecord]]] = {}
    for path in group.iterdir():
        match = _RUN_NAME.fullmatch(path.name)
        if match and path.is_dir():
            found.setdefault(match[1], []).append((int(match[2]), load_run(path)))
    if not found:
        raise UserError(f"{group}: no run folders named init1, order1, aug1 or identical1 ... (train.py --vary "
                        "writes them)")
    return {s: [run for _, run in sorted(found[s], key=lambda item: item[0])] for s in ALL_SOURCES if s in found}


def variance_report(sources: dict[str, list[RunRecord]], seed: int = REPORT_SEED,
                    n_resamples: int = REPORT_RESAMPLES) -> dict:
    """Per headline metric: variance_by_source of the runs (n, mean, std, their bootstrap intervals, share of
    variance; in metric units, percent) and the pooled group of every run but the identical ones; a metric some run
    lacks is reported as ``{"missing": [run names]}``. Plus the runs, the base seed and the summary sentence."""
    metrics = {key: _metric_report(sources, key, seed, n_resamples) for key in HEADLINE_METRICS}
    report = {"base_seed": next(iter(sources.values()))[0].config["seed"], "seed": seed, "n_resamples": n_resamples,
              "runs": {s: [_run_entry(run) for run in runs] for s, runs in sources.items()},
              "metrics": metrics, "size": _size(metrics[SIZE_METRIC])}
    return {**report, "sentence": _sentence(report["size"])}


def _run_entry(run: RunRecord) -> dict:
    return {"name": run.name, "seeds": list(run.seeds), "weights_sha256": run.summary["weights_sha256"],
            **{key: run_metrics(run).get(key) for key in HEADLINE_METRICS}}


def _metric_report(sources: dict[str, list[RunRecord]], key: str, seed: int, n_resamples: int) -> dict:
    values = {s: [run_metrics(run).get(key) for run in runs] for s, runs in sources.items()}
    missing = [run.name for s, runs in sources.items() for run, v in zip(runs, values[s], strict=True) if v is None]
    if missing:
        return {"missing": missing}
    pooled = [v for s, vals in values.items() if s != IDENTICAL_SOURCE for v in vals]
    by_source = variance_by_source(values, n_resamples=n_resamples, seed=seed)
    # variance_by_source sorts by name; the report keeps init, order, aug, identical
    return {"sources": {s: by_source[s] for s in sources},
            "pooled": summarize_group(pooled, n_resamples=n_resamples, seed=seed) if pooled else None}


def _size(entry: dict) -> dict | None:
    """The source with the largest std, and the seeds per group a SIZE_DELTA difference needs at the pooled std
    of the runs in which a seed changed (unpaired, REPORT_POWER, two-sided 5% level). None without such runs."""
    varied = {s: v for s, v in entry.get("sources", {}).items() if s != IDENTICAL_SOURCE}
    if not varied or entry.get("pooled") is None:
        return None
    largest = max(varied, key=lambda s: varied[s]["std"])
    std = entry["pooled"]["std"]
    return {"metric": SIZE_METRIC, "largest_source": largest, "largest_std": varied[largest]["std"],
            "pooled_std": std, "pooled_n": entry["pooled"]["n"], "delta": SIZE_DELTA, "power": REPORT_POWER,
            "seeds_needed": seeds_needed(std, std, SIZE_DELTA, REPORT_POWER)}


def _sentence(size: dict | None) -> str:
    if size is None:
        return "COCO mAP@0.5 is missing in some runs (or no seed was varied): no estimate of the seeds needed."
    if size["largest_std"] == 0.0:
        lead = "No source of randomness moves COCO mAP@0.5 (every std is 0)"
    else:
        lead = (f"{size['largest_source']} moves COCO mAP@0.5 the most (std {size['largest_std']:.3f} points "
                "between its runs)")
    return (f"{lead}; with this spread, a {size['delta']:g}-point difference in COCO mAP@0.5 needs "
            f"{size['seeds_needed']} seeds per group at {size['power'] * 100:g}% power (pooled std "
            f"{size['pooled_std']:.3f} of the {size['pooled_n']} runs with one seed changed; unpaired groups).")


def write_variance_report(group: str | Path, sources: dict[str, list[RunRecord]]) -> dict:
    """variance_report of ``sources`` as variance.json, variance.md and variance_by_source.png in ``group``."""
    group = Path(group)
    report = variance_report(sources)
    write_json(group / "variance.json", report)
    figures.plot_variance_by_source({s: [r[SIZE_METRIC] for r in runs] for s, runs in report["runs"].items()},
                                    SIZE_METRIC, group / "variance_by_source.png")
    write_text(group / "variance.md", render_markdown(report))
    return report


def _interval(low, high) -> str:
    return "n/a" if low is None else f"{low:.3f} to {high:.3f}"


def render_markdown(report: dict) -> str:
    """variance.md: the summary sentence, then per metric a table of the sources, then the runs."""
    counts = ", ".join(f"{s} {len(runs)}" for s, runs in report["runs"].items())
    lines = ["# Variance by source of randomness", "",
             f"Runs per source: {counts}. Base seed {report['base_seed']}: run k of source S has seed_S = seed + k "
             "and every other seed at the base seed; identical runs have every seed at the base seed.", "",
             report["sentence"], ""]
    for key, entry in report["metrics"].items():
        lines += [f"## {key} (percent)", ""]
        if "missing" in entry:
            lines += [f"Missing in {', '.join(entry['missing'])}.", ""]
            continue
        lines += ["| source | n | mean | 95% CI of the mean | std | 95% CI of the std | share of variance |",
                  "|---|---|---|---|---|---|---|"]
        rows = list(entry["sources"].items()) + ([("pooled (all but identical)", entry["pooled"])]
                                                 if entry["pooled"] else [])
        for name, s in rows:
            lines.append(f"| {name} | {s['n']} | {fmt(s['mean'])} | {_interval(s['mean_ci_low'], s['mean_ci_high'])} "
                         f"| {fmt(s['std'])} | {_interval(s['std_ci_low'], s['std_ci_high'])} | "
                         f"{fmt(s['share']) if 'share' in s else ''} |")
        lines.append("")
    lines += ["Share of variance: a source's variance over the summed variance of init, order and aug (it assumes "
              "they add independent noise); identical is the spread left when no seed changes (0 in strict mode). "
              f"Intervals: expanded percentile bootstrap, {report['n_resamples']} resamples, seed {report['seed']} "
              "(experiment/statistics.py); with a few runs per source the interval of a std is rough.", "",
              "## Runs", "", "| source | run | seeds (init, order, aug) | weights_sha256 | coco_mAP50 |",
              "|---|---|---|---|---|"]
    for source, runs in report["runs"].items():
        lines += [f"| {source} | {r['name']} | {', '.join(map(str, r['seeds']))} | `{r['weights_sha256'][:16]}` | "
                  f"{fmt(r['coco_mAP50'], 2)} |" for r in runs]
    lines += ["", "Figure: `variance_by_source.png` (COCO mAP@0.5 of every run, one column per source).", ""]
    return "\n".join(lines)

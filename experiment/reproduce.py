"""After a run: did it reproduce an earlier run of the same config and environment, bit for bit?"""
from __future__ import annotations

from pathlib import Path

from experiment.comparison import (
    first_divergence,
    incompatibilities,
    load_run,
    loss_differences,
)


def earlier_matches(run_dir: Path) -> tuple[list[Path], list[str]]:
    """(finished sibling run directories with the same config (seed included), data and reproducibility key, oldest
    first; ``"PATH: data ..."`` for each sibling that differs from this run in its data alone)."""
    me = load_run(run_dir)
    found, other_data = [], []
    for other in sorted(run_dir.parent.iterdir(), key=lambda p: p.stat().st_mtime):
        if other == run_dir or not (other / "summary.json").is_file():
            continue
        try:
            candidate = load_run(other)
        except ValueError:
            continue
        if candidate.seed != me.seed:
            continue
        problems = incompatibilities([candidate, me])
        if not problems:
            found.append(other)
        elif all(p.startswith("data ") for p in problems):
            other_data.append(f"{other}: {problems[0]}")
    return found, other_data


def check_against_earlier(run_dir: Path, log=print) -> bool | None:
    """Print whether this run matches the most recent earlier equivalent run; None when there is none (a run of
    the same config and environment on other data is not one: it is named with its first differing file)."""
    matches, other_data = earlier_matches(run_dir)
    if not matches:
        log("no earlier run with this config, data and environment in "
            f"{run_dir.parent}: run the same command again to check reproducibility")
        for line in other_data:
            log(f"not compared (other data, so another run): {line}")
        return None
    me, ref = load_run(run_dir), load_run(matches[-1])
    same = (me.summary["weights_sha256"] == ref.summary["weights_sha256"]
            and me.summary["losses_sha256"] == ref.summary["losses_sha256"])
    if same:
        log(f"REPRODUCED bit for bit: {ref.path} (same weights_sha256 and losses_sha256, {len(me.train)} steps)")
    else:
        diffs = loss_differences(ref, me)
        log(f"NOT reproduced: differs from {ref.path}; first divergent step {first_divergence(ref, me)}, "
            f"max |loss difference| {max((abs(d) for d in diffs), default=0.0):.3g}")
    return same

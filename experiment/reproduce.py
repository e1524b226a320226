"""After a run: did it reproduce an earlier run of the same config and environment, bit for bit?"""
from __future__ import annotations

from pathlib import Path

from experiment.comparison import (
    first_divergence,
    incompatibilities,
    load_run,
    loss_differences,
)


def earlier_matches(run_dir: Path) -> list[Path]:
    """Finished sibling run directories with the same config (seed included) and reproducibility key, oldest first."""
    me = load_run(run_dir)
    found = []
    for other in sorted(run_dir.parent.iterdir(), key=lambda p: p.stat().st_mtime):
        if other == run_dir or not (other / "summary.json").is_file():
            continue
        try:
            candidate = load_run(other)
        except ValueError:
            continue
        if candidate.seed == me.seed and not incompatibilities([me, candidate]):
            found.append(other)
    return found


def check_against_earlier(run_dir: Path, log=print) -> bool | None:
    """Print whether this run matches the most recent earlier equivalent run; None when there is none."""
    matches = earlier_matches(run_dir)
    if not matches:
        log("no earlier run with this config and environment in "
            f"{run_dir.parent}: run the same command again to check reproducibility")
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

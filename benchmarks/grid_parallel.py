"""A grid's wall time one run at a time against --jobs N, side by side, and whether every run kept its bits.

    python benchmarks/grid_parallel.py                                   # cfg/ci-tiny.yaml, 4 runs, 2 rounds
    python benchmarks/grid_parallel.py --config cfg/short.yaml --rounds 1 --json out.json
    python benchmarks/grid_parallel.py --smoke                           # CI: the path, 1 run per variant

Each variant trains the same grid (``--seeds 1,2,3,4`` by default) through ``train.py`` into a fresh folder:

- ``sequential, 1 thread``: ``--jobs 1 --threads 1``, the bits' reference;
- ``sequential, N threads``: ``--jobs 1 --threads N``, what a user without --jobs would run (other bits: the thread
  count is part of a CPU run's reproducibility key);
- ``--jobs N, 1 thread``: N runs at once, one thread each; its fingerprints must equal the first variant's.

One untimed run first generates the embedded set (a user's second grid finds it cached). Variants alternate within
a round (round 2 runs them in reverse order), so a slow minute of the machine does not fall on one of them alone.
On a GPU machine pass ``--devices 0-7`` to time ``--jobs 8 --devices 0-7`` against one run at a time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def variants(args) -> list[tuple[str, list[str], bool]]:
    """(name, train.py flags, must have the reference's bits) of each variant; the first is the reference."""
    if args.devices:
        first = args.devices.split(",")[0].split("-")[0]
        return [("sequential, one GPU", ["--jobs", "1", "--devices", first], True),
                (f"--jobs {args.jobs} --devices {args.devices}", ["--jobs", str(args.jobs), "--devices", args.devices],
                 True)]
    threaded = [] if args.smoke else [(f"sequential, {args.jobs} threads", ["--jobs", "1", "--threads",
                                                                         str(args.jobs)], False)]
    return [("sequential, 1 thread", ["--jobs", "1", "--threads", "1"], True), *threaded,
            (f"--jobs {args.jobs}, 1 thread", ["--jobs", str(args.jobs), "--threads", "1"], True)]


def run_grid(args, flags: list[str], project: Path, name: str, seeds: str | None = None) -> tuple[float, dict]:
    """Train the grid (``seeds``, default ``--seeds``) with ``flags``; returns (wall seconds, {run: weights_sha256})."""
    cmd = [sys.executable, str(REPO / "train.py"), "--config", args.config, "--seeds", seeds or args.seeds, *flags,
           "--project", str(project), "--name", name]
    start = time.monotonic()
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    seconds = time.monotonic() - start
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    group = project / name
    return seconds, {p.name: json.loads((p / "summary.json").read_text())["weights_sha256"]
                     for p in sorted(group.iterdir()) if (p / "summary.json").is_file()}


def measure(args) -> dict:
    rows = {name: {"seconds": [], "fingerprints": None, "must_match": same} for name, _, same in variants(args)}
    with tempfile.TemporaryDirectory() as tmp:
        if not args.smoke:  # one untimed run first: the embedded set is generated and cached, as for a second grid
            run_grid(args, variants(args)[0][1], Path(tmp), "warm-up", seeds=args.seeds.split(",")[0])
        for r in range(args.rounds):
            order = variants(args) if r % 2 == 0 else variants(args)[::-1]
            for name, flags, _ in order:
                seconds, prints = run_grid(args, flags, Path(tmp), f"round{r}-{len(rows[name]['seconds'])}-"
                                                                    f"{name.replace(' ', '_').replace(',', '')}")
                rows[name]["seconds"].append(round(seconds, 1))
                rows[name]["fingerprints"] = rows[name]["fingerprints"] or prints
                if rows[name]["fingerprints"] != prints:
                    raise SystemExit(f"{name}: fingerprints changed between rounds: {prints}")
    reference = next(iter(rows.values()))
    for row in rows.values():
        row["median_s"] = statistics.median(row["seconds"])
        row["x_reference"] = round(reference["median_s"] / row["median_s"], 2)
        row["same_bits_as_reference"] = row["fingerprints"] == reference["fingerprints"]
    return {"config": args.config, "seeds": args.seeds, "rounds": args.rounds, "variants": rows}


def render(result: dict) -> str:
    lines = [f"{result['config']}, seeds {result['seeds']}, {result['rounds']} round(s)", "",
             "| variant | wall s per round | speed-up vs first | same weights_sha256 as first |", "|---|---|---|---|"]
    for name, row in result["variants"].items():
        lines.append(f"| {name} | {', '.join(map(str, row['seconds']))} | {row['x_reference']:.2f} | "
                     f"{'yes' if row['same_bits_as_reference'] else 'no'} |")
    return "\n".join(lines)


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--config", default="cfg/ci-tiny.yaml", help="the preset every run of the grid trains")
    p.add_argument("--seeds", default="1,2,3,4", help="the grid's seeds, one run each")
    p.add_argument("--jobs", type=int, default=2, help="runs at once in the parallel variant")
    p.add_argument("--devices", default=None, help="GPU machine: CUDA devices for --jobs (e.g. 0-7)")
    p.add_argument("--rounds", type=int, default=2, help="rounds of all variants (alternating order)")
    p.add_argument("--smoke", action="store_true", help="one run per variant, one round, no warm-up, no N-thread "
                                                        "variant: the path, not the figures (CI)")
    p.add_argument("--json", type=Path, default=None, help="write the measurements here")
    return p


def main(args) -> dict:
    if args.smoke:
        args.seeds, args.rounds = "1", 1
    result = measure(args)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if not all(row["same_bits_as_reference"] for row in result["variants"].values() if row["must_match"]):
        raise SystemExit("a parallel run's bits differ from the same run made one at a time")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())

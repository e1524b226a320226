"""Compare repeated training runs, or audit one training step for nondeterminism.

    python compare.py runs/exp/r1 runs/exp/r2            # report.md, report.json, loss_curves.png, loss_diff.png
    python compare.py runs/a runs/b --out reports/ab --force   # compare runs whose config or environment differ
    python compare.py --audit runs/exp/last.pt           # per-parameter gradient identity over two passes
    python compare.py --baseline runs/a --candidate runs/b --intended lr   # A/B: is B better, or noise?
    python compare.py --baseline runs/scratch --candidate runs/coco --intended weights --reach 30   # + steps to 30

Runs whose config (seed aside) or environment differ are refused with the differing keys, unless --force.
A/B mode takes two groups (run directories, or folders of them): each must be one configuration, and the groups
may differ only in the --intended keys (or in exactly one key); ab_report.md gives per metric the difference with
its 95% CI, P(B>A) and the seeds needed to detect a --delta-point difference.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from utils.errors import UserError, run_cli


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, add_help=add_help,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", help="finished run directories (config.yaml, metrics.jsonl, ...)")
    parser.add_argument("--out", default=None, help="report directory (default: the runs' common parent; A/B: "
                                                    "ab-report beside the first candidate run)")
    parser.add_argument("--force", action="store_true", help="compare runs with differing config or environment")
    parser.add_argument("--baseline", nargs="+", default=None, metavar="RUNS",
                        help="A/B: the baseline group (A), run directories or folders of them")
    parser.add_argument("--candidate", nargs="+", default=None, metavar="RUNS",
                        help="A/B: the candidate group (B), run directories or folders of them")
    parser.add_argument("--intended", default=None, metavar="KEY,...",
                        help="A/B: the config keys the candidate changes on purpose (default: the one that differs)")
    parser.add_argument("--delta", type=float, default=None,
                        help="A/B: the difference worth detecting, in points, for the seeds needed (default 1.0)")
    parser.add_argument("--reach", type=float, default=None, metavar="MAP50",
                        help="A/B: also compare the optimizer steps each run took to reach this COCO mAP@0.5 (percent, "
                             "at the runs' evaluations)")
    parser.add_argument("--audit", default=None, metavar="CKPT", help="audit one training step of a checkpoint")
    parser.add_argument("--repeats", type=int, default=2, help="--audit: passes to compare (default 2)")
    parser.add_argument("--device", default=None, help="--audit: cpu or cuda (default: the run's)")
    return parser


def main(args: argparse.Namespace) -> int:
    if args.audit:
        from experiment.audit import audit_checkpoint, format_audit
        rows = audit_checkpoint(args.audit, args.repeats, args.device)
        print(format_audit(rows))
        return 0 if all(r["identical"] for r in rows) else 1
    if args.baseline or args.candidate:
        return _ab(args)
    if args.intended is not None or args.delta is not None or args.reach is not None:
        raise UserError("--intended, --delta and --reach belong to an A/B comparison (--baseline RUNS --candidate "
                        "RUNS)")
    if len(args.runs) < 2:
        raise UserError("give at least two run directories (or --audit CKPT)")
    from experiment.comparison import incompatibilities, load_run
    from experiment.report import write_report
    runs = [load_run(p) for p in args.runs]
    problems = incompatibilities(runs)
    if problems and not args.force:
        raise UserError("runs are not comparable (use --force to compare anyway); differing keys:\n  "
                         + "\n  ".join(problems))
    out = Path(args.out) if args.out else _common_parent([r.path for r in runs])
    result = write_report(out, runs)
    print((out / "report.md").read_text())
    print(f"report: {out / 'report.md'}")
    return 0 if result["bitwise_identical"] in (True, None) else 2


def _ab(args: argparse.Namespace) -> int:
    if not (args.baseline and args.candidate):
        raise UserError("an A/B comparison needs both --baseline RUNS and --candidate RUNS")
    if args.runs:
        raise UserError("give runs either positionally (repeats of one config) or with --baseline/--candidate "
                        "(an A/B comparison), not both")
    from experiment.ab import run_ab
    report = run_ab(args.baseline, args.candidate, args.out, args.intended,
                    1.0 if args.delta is None else args.delta, args.force, args.reach)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def _common_parent(paths: list[Path]) -> Path:
    parents = {p.resolve().parent for p in paths}
    return parents.pop() if len(parents) == 1 else Path("compare_report")


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "compare.py"))

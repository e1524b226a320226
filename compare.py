"""Compare repeated training runs, or audit one training step for nondeterminism.

    python compare.py runs/exp/r1 runs/exp/r2            # report.md, report.json, loss_curves.png, loss_diff.png
    python compare.py runs/a runs/b --out reports/ab --force   # compare runs whose config or environment differ
    python compare.py --audit runs/exp/last.pt           # per-parameter gradient identity over two passes

Runs whose config (seed aside) or environment differ are refused with the differing keys, unless --force.
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
    parser.add_argument("--out", default=None, help="report directory (default: the runs' common parent)")
    parser.add_argument("--force", action="store_true", help="compare runs with differing config or environment")
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


def _common_parent(paths: list[Path]) -> Path:
    parents = {p.resolve().parent for p in paths}
    return parents.pop() if len(parents) == 1 else Path("compare_report")


if __name__ == "__main__":
    sys.exit(run_cli(main, get_args_parser().parse_args(), "compare.py"))

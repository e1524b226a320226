"""Training throughput per determinism mode: what bit-reproducibility costs, measured on the real training step.

    python benchmarks/train_throughput.py --smoke                          # CI: tiny, CPU, well under a minute
    python benchmarks/train_throughput.py --device cpu --cfg cfg/yolov3-small-kitti.cfg --size 416x128 --batch 8 \
        --threads 2 --steps 20 --warmup 3 --rounds 3 --modes strict,reference,off --formats nchw,channels_last \
        --fill both
    python benchmarks/train_throughput.py --device cuda --cfg cfg/yolov3-kitti.cfg --size 416x416 --batch 16 \
        --modes strict,off --precisions bf16 --formats channels_last --fill both --cache ram

Grid: modes (utils/determinism.py) x precision (fp32, bf16 autocast) x memory format (NCHW, channels_last) x, for
strict, ``fill_uninitialized_memory`` on/off. Every configuration runs in its own processes, because determinism
switches are process-global and cuDNN autotuning state must not leak between configurations:

1. timed: ``max(warmup + steps, check_steps)`` training steps of the real path (synthetic KITTI-format set ->
   ``build_train_loader`` with multi-scale off and persistent workers -> ``forward_loss`` -> backward -> SGD
   step); a step is timed from ``next(loader)`` to the end of ``optimizer.step()`` (CUDA synchronised before the
   clock is read), and the time blocked on ``next(loader)`` is reported apart, so a starved GPU shows. The
   weights are hashed after ``check_steps`` steps, outside the timed region.
2. check: a second process, same seed, ``check_steps`` steps; "identical" = every hash equal.

``--rounds R`` repeats the whole grid R times, configurations interleaved (on a shared machine load drifts);
images/s = batch / median of the ``steps`` timed steps pooled over rounds.

Writes a JSON file (rewritten after each configuration, so a killed run keeps what it measured) and prints a
Markdown table with each configuration's throughput relative to the fastest ``off`` one and to ``off`` at the same
precision and format.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from training.config import TrainConfig, validate  # noqa: E402  (after the path fix; imports no torch)

RESULT_MARK = "THROUGHPUT_RESULT "  # prefixes the child's one JSON line on stdout
SMOKE = {"cfg": "cfg/yolov3-small-kitti.cfg", "size": "256x64", "batch": 2, "steps": 2, "warmup": 1,
         "check_steps": 2, "rounds": 1, "modes": "strict,off", "precisions": "fp32", "formats": "nchw", "fill": "on",
         "workers": 0, "synthetic_num": 16, "device": "cpu"}


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    d = TrainConfig()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--cfg", default=d.model, help="darknet cfg of the model")
    p.add_argument("--size", default="x".join(map(str, d.img_size)), help="input WxH, multiples of 32")
    p.add_argument("--batch", type=int, default=d.batch_size, help="images per step")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--steps", type=int, default=20, help="timed steps (median taken)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (cuDNN, allocator, workers)")
    p.add_argument("--check-steps", type=int, default=3, help="steps before the cross-process weight hash")
    p.add_argument("--rounds", type=int, default=1, help="measure the whole grid R times, interleaved (noisy hosts)")
    p.add_argument("--modes", default="strict,reference,off", help="comma-separated determinism modes")
    p.add_argument("--precisions", default=None, help="fp32,bf16 (default: both on cuda, fp32 on cpu)")
    p.add_argument("--formats", default="nchw,channels_last", help="comma-separated memory formats")
    p.add_argument("--fill", default="on", choices=("on", "off", "both"),
                   help="strict mode's fill_uninitialized_memory")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: 2 on cpu, 8 on cuda)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads")
    p.add_argument("--seed", type=int, default=d.seed, help="run seed (both processes of a check)")
    p.add_argument("--synthetic-num", type=int, default=d.synthetic_num, help="frames of the synthetic set")
    p.add_argument("--cache", default="none", choices=("none", "ram"), help="KittiDataset cache (ram: no decode)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: benchmarks/results/"
                                                            "throughput-DEVICE-DATE.json; smoke: under .cache/)")
    p.add_argument("--prepare", action="store_true", help="only generate (or verify) the synthetic set, then exit")
    p.add_argument("--smoke", action="store_true", help="tiny CPU run of the same path (overrides the above)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)  # internal: one configuration, as JSON
    return p


def train_config(spec: dict) -> TrainConfig:
    """The TrainConfig of one configuration: defaults, except what the benchmark varies or fixes."""
    return validate(dataclasses.replace(
        TrainConfig(), model=spec["cfg"], img_size=tuple(spec["size"]), batch_size=spec["batch"],
        determinism=spec["mode"], fill_uninitialized_memory=spec["fill"] != "off", threads=spec["threads"],
        device=spec["device"], amp="on" if spec["precision"] == "bf16" else "off",
        channels_last=spec["format"] == "channels_last",
        workers=spec["workers"], seed=spec["seed"], synthetic_num=spec["synthetic_num"], cache=spec["cache"],
        multiscale=False))  # one fixed size: timings stay comparable


def run_child(spec: dict) -> dict:
    """Configure determinism first, then train and time; returns the measurements of one process."""
    from training import build
    cfg = train_config(spec)
    switches, device = build.process(cfg)
    import torch

    from data.loader import endless
    from training.optim import Schedule, make_optimizer
    from training.step import Position, train_steps
    from utils.environment import environment
    from utils.fingerprint import weights_sha256
    model = build.model(cfg, device)
    loader = build.train_loader(cfg, build.dataset(cfg, cfg.train_split), 0, 0, persistent_workers=True)
    timed = spec["warmup"] + spec["steps"]
    total = spec["check_steps"] if spec["role"] == "check" else max(timed, spec["check_steps"])
    # The training schedule's burn-in (a constant peak lr diverges within a few steps); the same in both processes.
    schedule = Schedule(cfg.lr, math.ceil(cfg.burn_in_images / cfg.batch_size), total_steps=10**9)
    batches = Timed(endless(loader))
    steps = train_steps(model, model.heads, make_optimizer(model, cfg), batches, Position(), cfg, schedule, device)
    step_s, wait_s, sha = [], [], None
    for step in range(total):
        t0 = time.perf_counter()
        next(steps)  # one optimizer step of the training loop
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # kernels run asynchronously: stop the clock only when they are done
        step_s.append(time.perf_counter() - t0)
        wait_s.append(batches.last_wait)
        if step + 1 == spec["check_steps"]:
            sha = weights_sha256(model.state_dict())
    out = {"weights_sha256": sha, "step_s": step_s[spec["warmup"]:timed], "wait_s": wait_s[spec["warmup"]:timed]}
    if spec["role"] == "timed":
        out["env"] = environment(switches, device)
    return out


class Timed:
    """An iterator of batches that records how long the last ``next`` blocked (the loader wait)."""

    def __init__(self, batches):
        self.batches, self.last_wait = batches, 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        batch = next(self.batches)
        self.last_wait = time.perf_counter() - t0
        return batch


def resolve_args(args: argparse.Namespace) -> tuple[argparse.Namespace, list[str]]:
    """Apply --smoke and the device defaults; returns the arguments and notes for the reader."""
    notes = []
    if args.smoke:
        args = argparse.Namespace(**{**vars(args), **SMOKE})
    if args.workers is None:
        args.workers = 8 if args.device == "cuda" else 2
    if args.precisions is None:
        args.precisions = "fp32,bf16"
    if min(args.steps, args.warmup + 1, args.check_steps, args.batch, args.rounds) < 1:
        raise ValueError("need --steps, --check-steps, --batch, --rounds >= 1 and --warmup >= 0")
    if args.out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        folder = REPO / (".cache/benchmarks" if args.smoke else "benchmarks/results")
        args.out = folder / f"throughput-{'smoke-' if args.smoke else ''}{args.device}-{stamp}.json"
    return args, notes


def grid(args: argparse.Namespace) -> list[dict]:
    """One spec per configuration; fill varies for strict only (other modes never enable deterministic mode)."""
    fills = {"on": ["on"], "off": ["off"], "both": ["on", "off"]}[args.fill]
    size = [int(v) for v in args.size.lower().split("x")]
    base = {"cfg": args.cfg, "size": size, "batch": args.batch, "device": args.device, "steps": args.steps,
            "warmup": args.warmup, "check_steps": args.check_steps, "threads": args.threads, "seed": args.seed,
            "workers": args.workers, "synthetic_num": args.synthetic_num, "cache": args.cache}
    specs = []
    for mode in split(args.modes, ("strict", "reference", "off")):
        for precision in split(args.precisions, ("fp32", "bf16")):
            for fmt in split(args.formats, ("nchw", "channels_last")):
                for fill in fills if mode == "strict" else ["-"]:
                    specs.append({**base, "mode": mode, "precision": precision, "format": fmt, "fill": fill})
    train_config(specs[0])  # fail here, not in a child, on a bad size or cfg
    return specs


def split(text: str, allowed: tuple[str, ...]) -> list[str]:
    items = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in items if s not in allowed]
    if bad or not items:
        raise ValueError(f"expected a comma-separated subset of {', '.join(allowed)}, got {text!r}")
    return items


def spawn(spec: dict, role: str) -> dict:
    """Run one child process; raise with its output when it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps({**spec, "role": role})]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        raise RuntimeError(f"{role} run of {label(spec)} failed (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def measure(spec: dict) -> dict:
    """One round of a configuration: the timed process, then the check process."""
    timed = spawn(spec, "timed")
    check = spawn(spec, "check")
    return {**timed, "weights_sha256": [timed["weights_sha256"], check["weights_sha256"]]}


def summarize(spec: dict, rounds: list[dict]) -> dict:
    """One result row from the rounds of a configuration: step times pooled over rounds; identical when every
    process of every round ended with the same weights."""
    steps = [t for r in rounds for t in r["step_s"]]
    waits = [t for r in rounds for t in r["wait_s"]]
    hashes = [h for r in rounds for h in r["weights_sha256"]]
    return {**{k: spec[k] for k in ("mode", "precision", "format", "fill")}, "rounds": len(rounds),
            "images_per_s": spec["batch"] / statistics.median(steps),
            "images_per_s_per_round": [spec["batch"] / statistics.median(r["step_s"]) for r in rounds],
            "step_ms_median": 1e3 * statistics.median(steps),
            "loader_wait_ms_mean": 1e3 * statistics.fmean(waits),
            "loader_wait_ms_median": 1e3 * statistics.median(waits),
            "identical": len(set(hashes)) == 1, "weights_sha256": hashes, "step_s": [r["step_s"] for r in rounds],
            "switches": rounds[0]["env"]["determinism"], "env": rounds[0]["env"]}


def add_ratios(rows: list[dict]) -> None:
    """x fastest off: images/s over the fastest ``off`` row; x off same: over ``off`` at the same precision and
    format; fill_same_weights (strict, fill off): whether the weights equal those of fill on."""
    off = [r for r in rows if r["mode"] == "off"]
    fastest = max((r["images_per_s"] for r in off), default=None)
    for r in rows:
        same = [o["images_per_s"] for o in off if (o["precision"], o["format"]) == (r["precision"], r["format"])]
        r["x_fastest_off"] = r["images_per_s"] / fastest if fastest else None
        r["x_off_same"] = r["images_per_s"] / same[0] if same else None
        if r["mode"] == "strict" and r["fill"] == "off":
            twin = [o for o in rows if o["mode"] == "strict" and o["fill"] == "on"
                    and (o["precision"], o["format"]) == (r["precision"], r["format"])]
            r["fill_same_weights"] = twin[0]["weights_sha256"][0] == r["weights_sha256"][0] if twin else None


def label(spec: dict) -> str:
    return f"{spec['mode']}/{spec['precision']}/{spec['format']}/fill {spec['fill']}"


def table(rows: list[dict]) -> str:
    """The Markdown table of the results."""
    def ratio(v):
        return "-" if v is None else f"{v:.2f}"
    lines = ["| mode | precision | format | fill | images/s | step ms (median) | loader wait ms/step | identical | "
             "x fastest off | x off (same precision, format) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r['precision']} | {r['format']} | {r['fill']} | {r['images_per_s']:.1f} | "
                     f"{r['step_ms_median']:.1f} | {r['loader_wait_ms_mean']:.1f} | "
                     f"{'yes' if r['identical'] else 'no'} | {ratio(r['x_fastest_off'])} | {ratio(r['x_off_same'])} |")
    same = {True: "the same as", False: "NOT the same as", None: "not compared with (no fill-on row)"}
    notes = [f"- strict {r['precision']}/{r['format']}, fill off: weights after the check steps are "
             f"{same[r['fill_same_weights']]} those with fill on." for r in rows if "fill_same_weights" in r]
    return "\n".join(lines + ([""] + notes if notes else []))


def write(args, notes: list[str], rows: list[dict], failed: list[dict], complete: bool) -> None:
    env = rows[0]["env"] if rows else {}
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]), "complete": complete,
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k != "child"},
            "notes": notes, **{k: env.get(k) for k in ("torch", "cuda", "cudnn", "cpu", "cpu_count", "gpu",
                                                       "driver", "git_commit", "git_dirty")}}
    slim = [{k: v for k, v in r.items() if k != "env"} for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "results": slim, "failed": failed}, indent=1) + "\n")


def measure_grid(args, notes: list[str], specs: list[dict]) -> tuple[list[dict], list[dict]]:
    """Every configuration, ``args.rounds`` times; the JSON is rewritten after each. Returns (rows, failures)."""
    measured, failed, rows = [[] for _ in specs], [], []
    for r in range(args.rounds):  # rounds interleave configurations, so slow drifts of load hit all alike
        for n, spec in enumerate(specs):
            print(f"[round {r + 1}/{args.rounds}, {n + 1}/{len(specs)}] {label(spec)}", file=sys.stderr, flush=True)
            try:
                measured[n].append(measure(spec))
                last = summarize(spec, measured[n][-1:])
                print(f"    {last['images_per_s']:.1f} images/s, loader wait {last['loader_wait_ms_mean']:.1f} "
                      f"ms/step, identical: {last['identical']}", file=sys.stderr, flush=True)
            except RuntimeError as exc:  # e.g. out of memory: keep measuring the others, fail at the end
                print(f"    FAILED: {exc}", file=sys.stderr, flush=True)
                failed.append({"config": label(spec), "round": r + 1, "error": str(exc)[-4000:]})
            rows = [summarize(sp, m) for sp, m in zip(specs, measured) if m]
            add_ratios(rows)
            write(args, notes, rows, failed, complete=r + 1 == args.rounds and n + 1 == len(specs))
    return rows, failed


def main(args: argparse.Namespace) -> list[dict]:
    if args.child is not None:
        print(RESULT_MARK + json.dumps(run_child(json.loads(args.child))), flush=True)
        return []
    args, notes = resolve_args(args)
    specs = grid(args)
    from training.build import dataset_root
    dataset_root(train_config(specs[0]))  # generate the set once here, not inside a timed child
    if args.prepare:
        return []
    rows, failed = measure_grid(args, notes, specs)
    for note in notes:
        print(f"note: {note}")
    print(f"{args.cfg} at {args.size}, batch {args.batch}, {args.device}, {args.threads} threads, "
          f"{args.workers} workers, {args.steps} timed steps after {args.warmup} warm-up; "
          f"identity over {args.check_steps} steps in {2 * args.rounds} processes per configuration; "
          f"{args.rounds} round(s)")
    print(table(rows))
    print(f"results: {args.out}")
    if failed:
        raise SystemExit(f"{len(failed)} configuration run(s) failed: {', '.join(f['config'] for f in failed)}")
    return rows


if __name__ == "__main__":
    main(get_args_parser().parse_args())

"""Whole training loop, images/s: this repository against the peer pytorchyolo 1.8.0 (eriklindernoren/PyTorch-YOLOv3).

    python benchmarks/peer_throughput.py                  # 416x416, batch 8, 60 timed steps after 5, 3 rounds, CPU
    python benchmarks/peer_throughput.py --smoke          # CI: 128x128, batch 2, 3 timed steps after 1, 1 round
    python benchmarks/peer_throughput.py --peer-python /path/to/venv/bin/python --rounds 5 --steps 100

The peer lives in its own virtual environment, outside the repository (it pins torch<1.13 and numpy<2, so it is
installed without its dependencies and they are added by hand; the same torch as the repository's):

    python3 -m venv /work/peer-venv
    /work/peer-venv/bin/pip install torch==2.14.1 torchvision==0.29.1
    /work/peer-venv/bin/pip install --no-deps pytorchyolo==1.8.0
    /work/peer-venv/bin/pip install "numpy<2" "Pillow>=9.1,<10" "imgaug>=0.4,<0.5" "scipy>=1.9,<2" "urllib3<2" \\
        "terminaltables<4" "torchsummary<2" "tqdm<5" "matplotlib<4" "tensorboard<3"

Without it (``--peer-python`` missing or unable to import ``pytorchyolo.train``) the repository side is still
measured and the peer is reported as skipped; the exit status is 0.

Both sides train the repository's ``cfg/yolov3-small-kitti.cfg`` (for the peer a converted copy: a full darknet
``[net]`` section, comments stripped, the anchors as the repository scales them to the input size, rounded to whole
pixels) at the same square input (the peer supports no other), the same batch and number of optimizer steps, on
``--threads`` torch threads, on the train split of the embedded synthetic KITTI-format set (for the peer: an image
list and YOLO label files ``class cx cy w h``, DontCare dropped, written into a temporary folder). Each side runs its
own unmodified loop in a fresh process, rounds alternating the order of the two sides (the machine is noisy):

- repo: ``training.trainer.Trainer.fit``, the loop of ``python train.py`` (its defaults: determinism ``strict``,
  decoded-frame RAM cache, no DataLoader worker, flip augmentation, a metrics.jsonl line and, when tensorboard is
  installed, TensorBoard scalars every step, a weight fingerprint every 10 steps), multi-scale off, no evaluation;
  training stops after warm-up + steps with ``--max-steps``, whose checkpoint comes after the timed window.
- peer: ``pytorchyolo.train.run()`` itself (its defaults: PIL decode and imgaug ``DefaultAug`` per image,
  pad to square, ``--peer-workers`` DataLoader workers, TensorBoard lines and a tqdm bar every step), with
  checkpoint and evaluation intervals beyond the run, on CPU (``CUDA_VISIBLE_DEVICES=""``); its logger is wrapped
  to note the time of each step and to end the run after warm-up + steps.

A step ends when its side's per-step bookkeeping is done (repo: the progress line; peer: the TensorBoard scalars);
images/s = batch x steps / (end of the last step - end of the last warm-up step), so process start, model
construction, data set-up and the warm-up are excluded on both sides alike; the window includes any epoch change
(a new loader; the peer also restarts its workers). The two losses differ (repo: darknet's; peer: the ultralytics-
style CIoU + BCE of pytorchyolo), and so do augmentation and data loading: this measures each project's whole loop
as it ships, not one kernel. Prints a Markdown table (images/s per round, median per side, ratio repo / peer) and
writes a JSON file.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
START_ENV = dict(os.environ)  # before any import edits it (cv2 prepends to LD_LIBRARY_PATH): what children get
sys.path.insert(0, str(REPO))
# Repository modules are imported inside the functions that need them: the peer's child runs this very file under
# the peer's interpreter, which has none of the repository's dependencies.

RESULT_MARK = "PEER_THROUGHPUT_RESULT "  # prefixes a child's one JSON line on stdout
DEFAULT_PEER_PYTHON = "/work/peer-venv/bin/python"
INSTALL_HINT = ("install it in its own venv: python3 -m venv /work/peer-venv && /work/peer-venv/bin/pip install "
                "torch==2.14.1 torchvision==0.29.1 && /work/peer-venv/bin/pip install --no-deps pytorchyolo==1.8.0 "
                "&& /work/peer-venv/bin/pip install 'numpy<2' 'Pillow>=9.1,<10' 'imgaug>=0.4,<0.5' 'scipy>=1.9,<2' "
                "'urllib3<2' terminaltables torchsummary tqdm matplotlib 'tensorboard<3' (see this script's --help)")
SMOKE = {"size": 128, "batch": 2, "steps": 3, "warmup": 1, "rounds": 1, "synthetic_num": 16}
FAR = 10**6  # an epoch interval no run reaches: no checkpoint or evaluation at epoch ends
PEER_PROBE = ("import importlib.metadata as m, json, platform, torch, pytorchyolo.train; "
              "print(json.dumps({'pytorchyolo': m.version('pytorchyolo'), 'torch': torch.__version__, "
              "'python': platform.python_version()}))")


def get_args_parser(add_help: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=add_help,
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--cfg", default="cfg/yolov3-small-kitti.cfg", help="darknet cfg of the model (both sides)")
    p.add_argument("--size", type=int, default=416, help="square input side in pixels, a multiple of 32")
    p.add_argument("--batch", type=int, default=8, help="images per optimizer step")
    p.add_argument("--steps", type=int, default=60, help="timed optimizer steps per process")
    p.add_argument("--warmup", type=int, default=5, help="untimed optimizer steps first (>= 1)")
    p.add_argument("--rounds", type=int, default=3, help="processes per side, the sides alternating")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads (both sides)")
    p.add_argument("--synthetic-num", type=int, default=640, help="frames of the embedded synthetic set (half train)")
    p.add_argument("--determinism", default="strict", choices=("strict", "reference", "off"),
                   help="the repository's determinism mode (its default: strict)")
    p.add_argument("--repo-cache", default="ram", choices=("ram", "none"),
                   help="the repository's frame cache (its default: ram; none decodes PNGs every step, as the peer)")
    p.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON, help="interpreter of the peer's venv")
    p.add_argument("--peer-workers", type=int, default=2, help="the peer's DataLoader workers (its --n_cpu)")
    p.add_argument("--peer-aug", default="default", choices=("default", "none"),
                   help="the peer's augmentation: its DefaultAug (imgaug), or none (pad to square only)")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default: benchmarks/results/"
                                                            "peer-throughput-cpu-DATE.json; smoke: under .cache/)")
    p.add_argument("--smoke", action="store_true", help="tiny settings for CI (override the above)")
    p.add_argument("--child", default=None, choices=("repo", "peer"), help=argparse.SUPPRESS)  # internal
    p.add_argument("--spec", default=None, help=argparse.SUPPRESS)  # internal: the child's settings, as JSON
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Apply --smoke, check the numbers, pick the output path."""
    if args.smoke:
        args = argparse.Namespace(**{**vars(args), **SMOKE})
    if min(args.steps, args.warmup, args.batch, args.rounds, args.threads, args.synthetic_num) < 1:
        raise SystemExit("need --steps, --warmup, --batch, --rounds, --threads and --synthetic-num >= 1")
    if args.size <= 0 or args.size % 32:
        raise SystemExit(f"--size must be a positive multiple of 32, got {args.size}")
    if args.out is None:
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
        folder = REPO / (".cache/benchmarks" if args.smoke else "benchmarks/results")
        args.out = folder / f"peer-throughput-{'smoke-' if args.smoke else ''}cpu-{stamp}.json"
    return args


def base_spec(args: argparse.Namespace) -> dict:
    keys = ("cfg", "size", "batch", "steps", "warmup", "threads", "synthetic_num", "determinism", "repo_cache",
            "peer_workers", "peer_aug")
    return {k: getattr(args, k) for k in keys}


# ---------------------------------------------------------------------------------------------------------- timing

def window(marks: list[float], spec: dict) -> dict:
    """images/s over the timed steps, from the end times of every step of one process."""
    total = spec["warmup"] + spec["steps"]
    if len(marks) != total:
        raise RuntimeError(f"expected {total} step marks, got {len(marks)}: the loop's hook no longer fires per step")
    timed = marks[spec["warmup"] - 1:]
    seconds = timed[-1] - timed[0]
    return {"images_per_s": spec["steps"] * spec["batch"] / seconds, "seconds": seconds,
            "step_s": [b - a for a, b in zip(timed, timed[1:])]}


def epochs_for(spec: dict, train_frames: int, min_steps: int = 0) -> int:
    """Epochs enough to reach warm-up + steps, plus one (the run never reaches its last epoch's end), and to hold
    ``min_steps`` steps (the repository refuses a schedule shorter than its burn-in)."""
    per_epoch = train_frames // spec["batch"]
    if per_epoch < 1:
        raise SystemExit(f"{train_frames} train frames make no batch of {spec['batch']}: raise --synthetic-num")
    return max(math.ceil((spec["warmup"] + spec["steps"]) / per_epoch) + 1, math.ceil((min_steps + 1) / per_epoch))


# ----------------------------------------------------------------------------------------------------- repo side

def repo_config(spec: dict, epochs: int = 1):
    """The TrainConfig of the repository side: the defaults of train.py, except what the benchmark fixes."""
    import dataclasses

    from training.config import TrainConfig, validate, with_file_hashes
    total = spec["warmup"] + spec["steps"]
    return with_file_hashes(validate(dataclasses.replace(
        TrainConfig(), model=spec["cfg"], img_size=(spec["size"], spec["size"]), batch_size=spec["batch"],
        multiscale=False, threads=spec["threads"], device="cpu", determinism=spec["determinism"],
        cache=spec["repo_cache"], synthetic_num=spec["synthetic_num"], epochs=epochs, eval_every=0,
        checkpoint_epochs=epochs, max_steps=total)))


def run_repo_child(spec: dict) -> dict:
    """Train with the Trainer of train.py, noting the end of every step (after the progress line)."""
    from data.kitti import read_split
    from training import build, trainer
    from utils.environment import environment
    cfg = repo_config(spec)
    frames = len(read_split(build.dataset_root(cfg), cfg.train_split))
    cfg = repo_config(spec, epochs_for(spec, frames, math.ceil(cfg.burn_in_images / cfg.batch_size)))
    switches, device = build.process(cfg)
    marks: list[float] = []
    losses: list[float] = []

    class MarkingProgress(trainer.Progress):
        def step(self, record: dict, steps_per_epoch: int) -> None:
            super().step(record, steps_per_epoch)
            marks.append(time.perf_counter())
            losses.append(record["total"])

    trainer.Progress = MarkingProgress
    run = trainer.Trainer(cfg, device, log=print)
    with tempfile.TemporaryDirectory() as run_dir:
        summary = run.fit(Path(run_dir))
    if summary.get("stopped_at_step") != cfg.max_steps:
        raise RuntimeError(f"expected a stop at step {cfg.max_steps}, got {summary}")
    env = environment(switches, device)
    return {**window(marks, spec), "loss_first_last": [losses[0], losses[-1]],
            "env": {k: env.get(k) for k in ("python", "torch", "numpy", "opencv", "cpu", "cpu_count", "git_commit",
                                            "git_dirty")}}


# ----------------------------------------------------------------------------------------------------- peer side

class _Done(Exception):
    """Raised from the peer's logger after the last step: its run() has no step limit of its own."""


def run_peer_child(spec: dict) -> dict:
    """Run ``pytorchyolo.train.run()`` as its console script would, its logger noting the end of every step."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (REPO, HERE)]  # no repo module shadows
    import torch
    torch.set_num_threads(spec["threads"])
    import pytorchyolo.train as peer
    from pytorchyolo.utils.transforms import DEFAULT_TRANSFORMS
    marks: list[float] = []
    losses: list[float] = []
    total = spec["warmup"] + spec["steps"]

    class MarkingLogger(peer.Logger):
        def list_of_scalars_summary(self, tag_value_pairs, step):
            super().list_of_scalars_summary(tag_value_pairs, step)  # the last thing of the peer's step
            marks.append(time.perf_counter())
            losses.append(dict(tag_value_pairs)["train/loss"])
            if len(marks) == total:
                raise _Done

    peer.Logger = MarkingLogger
    if spec["peer_aug"] == "none":
        peer.AUGMENTATION_TRANSFORMS = DEFAULT_TRANSFORMS
    sys.argv = ["yolo-train", "--model", spec["peer_cfg"], "--data", spec["peer_data"], "--epochs",
                str(epochs_for(spec, spec["train_frames"])), "--n_cpu", str(spec["peer_workers"]),
                "--checkpoint_interval", str(FAR), "--evaluation_interval", str(FAR), "--logdir", "logs",
                "--seed", "0"]
    try:
        peer.run()
    except _Done:
        pass
    import numpy
    return {**window(marks, spec), "loss_first_last": [losses[0], losses[-1]],
            "env": {"torch": torch.__version__, "numpy": numpy.__version__, "torch_threads": torch.get_num_threads()}}


def peer_status(python: str) -> tuple[dict | None, str]:
    """(versions, "") when ``python`` imports pytorchyolo.train, else (None, why not)."""
    if not Path(python).is_file():
        return None, f"{python} does not exist"
    try:
        done = subprocess.run([python, "-c", PEER_PROBE], cwd=tempfile.gettempdir(), capture_output=True, text=True,
                              timeout=300, env=peer_env())
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{python} did not run: {exc}"
    if done.returncode:
        return None, f"{python} cannot import pytorchyolo.train: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


def peer_env() -> dict:
    return {**START_ENV, "CUDA_VISIBLE_DEVICES": ""}  # the peer picks CUDA whenever it sees one


def peer_cfg_text(cfg_path: Path, spec: dict) -> str:
    """The repository's cfg for pytorchyolo: a full [net] section, no comments, the anchors scaled from the cfg's
    [net] size to the input size as the repository scales them (models/darknet.py), rounded to whole pixels."""
    blocks: list[tuple[str, list[tuple[str, str]]]] = []
    for raw in cfg_path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("["):
            blocks.append((line.strip("[]").strip(), []))
        elif line:
            key, _, value = line.partition("=")
            blocks[-1][1].append((key.strip(), value.replace(" ", "")))
    net = dict(blocks[0][1])
    sx, sy = spec["size"] / int(net["width"]), spec["size"] / int(net["height"])
    out = ["[net]", *peer_hyperparameters(spec)]
    for kind, pairs in blocks[1:]:
        out += ["", f"[{kind}]"]
        for key, value in pairs:
            if kind == "yolo" and key == "anchors":
                nums = [float(v) for v in value.split(",") if v]
                value = ",".join(str(round(v * (sx if i % 2 == 0 else sy))) for i, v in enumerate(nums))
            out.append(f"{key}={value}")
    return "\n".join(out) + "\n"


def peer_hyperparameters(spec: dict) -> list[str]:
    """[net] keys pytorchyolo requires; optimizer and rates as the repository's defaults (SGD, 0.002, burn-in of
    800 images), the decay steps beyond the run."""
    from training.config import TrainConfig
    d = TrainConfig()
    return [f"batch={spec['batch']}", "subdivisions=1", f"width={spec['size']}", f"height={spec['size']}",
            "channels=3", "optimizer=sgd", f"momentum={d.momentum}", f"decay={d.weight_decay}",
            f"learning_rate={d.lr}", f"burn_in={max(1, d.burn_in_images // spec['batch'])}", f"max_batches={FAR}",
            "policy=steps", f"steps={FAR // 2},{FAR // 2 + 1}", "scales=.1,.1"]


def write_peer_data(root: Path, classes: tuple[str, ...], folder: Path) -> int:
    """The train split in pytorchyolo's layout under ``folder``: images/ID.png (links), labels/ID.txt
    (``class cx cy w h``, normalised; DontCare and untrained classes dropped), train.txt, classes.names and
    kitti.data. Returns the number of frames."""
    from data.kitti import IMAGE_DIR, LABEL_DIR, image_size, read_split
    from data.kitti_labels import KITTI_CLASSES, read_label_file
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    ids = read_split(root, "train")
    for frame in ids:
        image = folder / "images" / f"{frame}.png"
        image.symlink_to(root / IMAGE_DIR / f"{frame}.png")
        width, height = image_size(image)
        labels = read_label_file(root / LABEL_DIR / f"{frame}.txt", tuple(dict.fromkeys(KITTI_CLASSES + classes)))
        lines = [yolo_line(classes.index(name), box, width, height)
                 for name, box in zip(labels.names, labels.boxes) if name in classes]
        (folder / "labels" / f"{frame}.txt").write_text("".join(lines))
    (folder / "train.txt").write_text("".join(f"{folder / 'images' / f'{frame}.png'}\n" for frame in ids))
    (folder / "classes.names").write_text("".join(f"{name}\n" for name in classes))
    (folder / "kitti.data").write_text(f"classes={len(classes)}\ntrain={folder / 'train.txt'}\n"
                                       f"valid={folder / 'train.txt'}\nnames={folder / 'classes.names'}\n")
    return len(ids)


def yolo_line(cls: int, box, width: int, height: int) -> str:
    x1, x2 = (min(max(float(v), 0.0), width) for v in (box[0], box[2]))
    y1, y2 = (min(max(float(v), 0.0), height) for v in (box[1], box[3]))
    return (f"{cls} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} {(x2 - x1) / width:.6f} "
            f"{(y2 - y1) / height:.6f}\n")


def prepare_peer(args: argparse.Namespace, root: Path, folder: Path) -> dict:
    """Write the peer's cfg and data under ``folder``; returns the peer's spec."""
    spec = base_spec(args)
    cfg = repo_config(spec)
    (folder / "yolov3-small-kitti-peer.cfg").write_text(peer_cfg_text(REPO / cfg.model, spec))
    frames = write_peer_data(root, tuple(cfg.classes), folder / "data")
    return {**spec, "peer_cfg": str(folder / "yolov3-small-kitti-peer.cfg"),
            "peer_data": str(folder / "data" / "kitti.data"), "train_frames": frames}


# -------------------------------------------------------------------------------------------------------- driver

def spawn(side: str, spec: dict, python: str, cwd: Path) -> dict:
    """One child process of ``side``; raise with its output when it fails."""
    cmd = [python, str(Path(__file__).resolve()), "--child", side, "--spec", json.dumps(spec)]
    env = peer_env() if side == "peer" else START_ENV
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_MARK)]
    if done.returncode or not lines:
        raise SystemExit(f"the {side} run failed (exit {done.returncode}):\n{done.stdout[-4000:]}{done.stderr[-4000:]}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def measure(args: argparse.Namespace, peer_spec: dict | None, folder: Path) -> dict[str, list[dict]]:
    """``args.rounds`` processes per side, the order of the sides alternating from round to round."""
    rounds: dict[str, list[dict]] = {"repo": [], "peer": []}
    for r in range(args.rounds):
        order = ("repo", "peer") if r % 2 == 0 else ("peer", "repo")
        for side in order:
            if side == "peer" and peer_spec is None:
                continue
            print(f"[round {r + 1}/{args.rounds}] {side}", file=sys.stderr, flush=True)
            if side == "repo":
                result = spawn("repo", base_spec(args), sys.executable, REPO)
            else:
                run_dir = folder / f"peer-run-{r + 1}"
                run_dir.mkdir()
                result = spawn("peer", peer_spec, args.peer_python, run_dir)
            print(f"    {result['images_per_s']:.2f} images/s", file=sys.stderr, flush=True)
            rounds[side].append(result)
    return rounds


def summarize(rounds: list[dict]) -> dict:
    per_round = [r["images_per_s"] for r in rounds]
    return {"images_per_s_median": statistics.median(per_round), "images_per_s_per_round": per_round,
            "seconds_per_round": [r["seconds"] for r in rounds], "step_s": [r["step_s"] for r in rounds],
            "loss_first_last": [r["loss_first_last"] for r in rounds],
            "env": rounds[0]["env"]}


def table(repo: dict, peer: dict | None, peer_label: str) -> str:
    ratio = repo["images_per_s_median"] / peer["images_per_s_median"] if peer else None
    lines = ["| side | images/s per round | median images/s | ratio repo / peer |", "|---|---|---|---|"]
    lines.append(f"| this repository | {' / '.join(f'{v:.2f}' for v in repo['images_per_s_per_round'])} | "
                 f"{repo['images_per_s_median']:.2f} | {'-' if ratio is None else f'{ratio:.2f}'} |")
    if peer:
        lines.append(f"| {peer_label} | {' / '.join(f'{v:.2f}' for v in peer['images_per_s_per_round'])} | "
                     f"{peer['images_per_s_median']:.2f} | 1.00 |")
    else:
        lines.append(f"| {peer_label} | skipped | - | - |")
    return "\n".join(lines)


def write(args: argparse.Namespace, results: dict) -> None:
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
                     if k not in ("child", "spec")}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, **results}, indent=1) + "\n")


def main(args: argparse.Namespace) -> dict:
    if args.child is not None:
        spec = json.loads(args.spec)
        result = run_repo_child(spec) if args.child == "repo" else run_peer_child(spec)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return result
    args = resolve_args(args)
    from training.build import dataset_root
    root = dataset_root(repo_config(base_spec(args)))  # generated once here, not inside a timed child
    versions, reason = peer_status(args.peer_python)
    with tempfile.TemporaryDirectory(prefix="peer-throughput-") as tmp:
        peer_spec = prepare_peer(args, root, Path(tmp)) if versions else None
        rounds = measure(args, peer_spec, Path(tmp))
    repo = summarize(rounds["repo"])
    peer = summarize(rounds["peer"]) if versions else None
    skipped = "" if versions else f"skipped: pytorchyolo not installed ({reason}); {INSTALL_HINT}"
    label = f"pytorchyolo {versions['pytorchyolo']}" if versions else "pytorchyolo 1.8.0"
    results = {"repo": repo, "peer": peer or {"skipped": skipped}, "peer_versions": versions,
               "ratio_repo_over_peer": repo["images_per_s_median"] / peer["images_per_s_median"] if peer else None}
    write(args, results)
    print(f"{args.cfg} at {args.size}x{args.size}, batch {args.batch}, CPU, {args.threads} torch threads, "
          f"{args.steps} timed steps after {args.warmup} warm-up, {args.rounds} round(s); repo: determinism "
          f"{args.determinism}, cache {args.repo_cache}; peer: {args.peer_workers} workers, augmentation "
          f"{args.peer_aug}")
    print(table(repo, peer, label))
    if skipped:
        print(skipped)
    print(f"results: {args.out}")
    return results


if __name__ == "__main__":
    main(get_args_parser().parse_args())

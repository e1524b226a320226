"""The run directory and its files: config.yaml, env.json, metrics.jsonl, summary.json, and the fingerprints.

Fingerprints:
- ``weights_sha256``: sha256 over the raw bytes of every parameter and buffer, in state_dict order.
- ``losses_sha256``: sha256 over the float32 total loss of every optimizer step, in step order (the bytes
  recorded as ``loss_f32`` hex in metrics.jsonl). Under DDP it is the all-reduced (mean over ranks) loss.
- ``params``: every ``fingerprint_every`` steps metrics.jsonl carries a 16-hex prefix of the weights hash, so a
  comparison can find the first divergent step even where the printed losses look equal.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import struct
import subprocess
import sys
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]


def new_run_dir(project: str | Path, name: str) -> Path:
    """``project/name``, or ``name2``, ``name3``... when taken: a run directory is never overwritten."""
    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    for i in range(1, 100000):
        path = project / (name if i == 1 else f"{name}{i}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise RuntimeError(f"no free run directory name for {project / name}")


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian bytes of a tensor (any dtype, bf16 included)."""
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes()


def weights_sha256(state_dict: dict) -> str:
    h = hashlib.sha256()
    for value in state_dict.values():
        h.update(tensor_bytes(value))
    return h.hexdigest()


def f32_hex(value: float) -> str:
    """The exact float32 bits of a loss value, as 8 hex digits (big-endian, readable)."""
    return struct.pack(">f", value).hex()


def losses_sha256(hex_losses: list[str]) -> str:
    h = hashlib.sha256()
    for hx in hex_losses:
        h.update(bytes.fromhex(hx)[::-1])  # little-endian float32, the bytes of the tensor itself
    return h.hexdigest()


def write_json(path: str | Path, obj) -> None:
    """Atomic JSON write (temp + fsync + rename): a crash leaves the old file or the new, never half."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_text(path: str | Path, text: str) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_config(run_dir: Path, config: dict) -> None:
    write_text(run_dir / "config.yaml", yaml.safe_dump(config, sort_keys=False))


class MetricsLog:
    """Append-only metrics.jsonl: one line per optimizer step and one per evaluation, flushed per line.

    ``mirror``: another sink with the same methods (utils.board.Board: TensorBoard events) fed every record.
    """

    def __init__(self, path: str | Path, mirror=None):
        self.path = Path(path)
        self._file = open(self.path, "a")
        self.mirror = mirror

    def write(self, record: dict) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self.mirror:
            self.mirror.write(record)

    def sync(self) -> None:
        """fsync, called with each checkpoint so metrics never lag the checkpoint they describe."""
        os.fsync(self._file.fileno())
        if self.mirror:
            self.mirror.sync()

    def close(self) -> None:
        self._file.close()
        if self.mirror:
            self.mirror.close()


def read_metrics(path: str | Path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only what the checkpoint at ``step`` has seen: a resumed run replays every later line exactly."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= step and not (r.get("type") == "eval" and
                                                                                 r.get("step", 0) > step)]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def step_losses(records: list[dict]) -> list[str]:
    """The loss_f32 hex of every train record, in step order."""
    return [r["loss_f32"] for r in records if r.get("type") == "train"]


def environment(switches: dict, device: torch.device, extra: dict | None = None) -> dict:
    """What decides the bits of a run besides its config: software, hardware, determinism switches."""
    import cv2
    import numpy
    import torchvision
    env = {
        "python": sys.version.split()[0], "platform": platform.platform(),
        "torch": torch.__version__, "torchvision": torchvision.__version__, "numpy": numpy.__version__,
        "opencv": cv2.__version__, "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "device": str(device), "cpu": _cpu_model(), "cpu_count": os.cpu_count(),
        **_gpu_info(device), **_git_state(), "determinism": switches,
    }
    env.update(extra or {})
    return env


def reproducibility_key(env: dict) -> dict:
    """The part of env.json two runs must share for their bits to be comparable."""
    keys = ("python", "torch", "torchvision", "numpy", "opencv", "cuda", "cudnn", "device", "gpu", "cpu",
            "world_size", "backend", "per_rank_batch")
    det = env.get("determinism", {})
    return {**{k: env.get(k) for k in keys}, "torch_threads": det.get("torch_threads"), "mode": det.get("mode")}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _gpu_info(device: torch.device) -> dict:
    if device.type != "cuda":
        return {"gpu": None, "driver": None}
    driver = None
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return {"gpu": torch.cuda.get_device_name(device), "driver": driver}


def _git_state() -> dict:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "git_dirty": None}
    if commit.returncode:
        return {"git_commit": None, "git_dirty": None}
    return {"git_commit": commit.stdout.strip(), "git_dirty": bool(dirty.stdout.strip())}

"""The machine and software a run executes on: device selection, the environment record of env.json, and the
reproducibility key (the part of it two runs must share for their bits to be comparable)."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from utils.errors import UserError

REPO = Path(__file__).resolve().parents[1]
# What decides the bits besides the config: software, hardware, determinism mode and parallel layout.
KEY_FIELDS = ("python", "torch", "torchvision", "numpy", "opencv", "cuda", "cudnn", "device", "gpu", "cpu",
              "world_size", "backend", "per_rank_batch")


def select_device(name: str) -> torch.device:
    """auto: CUDA when available, else CPU. Asking for CUDA without one fails loudly."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise UserError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def environment(switches: dict, device: torch.device, extra: dict | None = None) -> dict:
    """Software, hardware, git state and the determinism switches (``utils.determinism.switches``), for env.json."""
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


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX-512 BF16 or AMX), where bf16 autocast speeds training up; on
    other CPUs it is emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def peak_memory_mb(device: torch.device) -> float:
    """The process's peak memory in MiB: allocated by torch on a CUDA device, else the host's peak resident set."""
    if device.type == "cuda":
        return round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    import resource
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def reproducibility_key(env: dict) -> dict:
    """The part of an env.json two runs must share for their bits to be comparable."""
    det = env.get("determinism", {})
    return {**{k: env.get(k) for k in KEY_FIELDS}, "torch_threads": det.get("torch_threads"), "mode": det.get("mode")}


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

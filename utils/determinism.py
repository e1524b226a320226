"""The one owner of global determinism switches: seeds, cuDNN flags, deterministic algorithms, CUBLAS, threads.

Three modes (``--determinism``):

- ``strict`` (default): every seed, ``torch.use_deterministic_algorithms(True)`` in error mode, cuDNN on with
  benchmark off and deterministic on, ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` set before CUDA initialises, the
  expand-based upsample, a fixed CPU thread count. Same seed -> same bits on the same machine and software.
- ``reference``: exactly the recipe of the reference post (docs/determinism.md), flaws included:
  its seeds, cuDNN *disabled*, benchmark off, deterministic on, ``PYTHONHASHSEED`` exported from inside the
  running script (it reaches only child processes), the stock ``F.interpolate`` upsample, and a DataLoader
  ``worker_init_fn`` that seeds NumPy with the constant 0 in every worker. No deterministic algorithms.
- ``off``: the common fast setting: seeds set, cuDNN benchmark on, stock upsample, no deterministic algorithms.

No other module seeds a global RNG or flips one of these switches.
"""
from __future__ import annotations

import os
import random

import numpy as np
import torch

MODES = ("strict", "reference", "off")
CUBLAS_WORKSPACE = ":4096:8"
MAX_SEED = 2**63 - 1


def configure(mode: str, seed: int, threads: int, *, fill_uninitialized_memory: bool) -> dict:
    """Apply a determinism mode to this process. Call once, before anything touches CUDA.

    Args:
        mode: one of ``MODES``.
        seed: the run seed, 0 <= seed < 2**63.
        threads: ``torch.set_num_threads`` value; a fixed count is part of the CPU reproducibility key
            (1 vs 2 threads changes the bits of a CPU step).
        fill_uninitialized_memory: strict mode only; False skips deterministic mode's NaN fill of
            ``torch.empty`` (faster; safe only while a test shows no op reads uninitialised memory). No default
            here: TrainConfig's ``fill_uninitialized_memory`` is the one default, for training and inference.
    Returns:
        Every switch as set, for env.json.
    """
    if mode not in MODES:
        raise ValueError(f"determinism mode must be one of {MODES}, got {mode!r}")
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if mode == "strict":
        _set_cublas_workspace()
    _seed_all(seed)
    torch.set_num_threads(threads)
    if mode == "strict":
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.utils.deterministic.fill_uninitialized_memory = fill_uninitialized_memory
        torch.backends.cudnn.enabled = True
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif mode == "reference":
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.enabled = False
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        os.environ["PYTHONHASHSEED"] = str(seed)
    else:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.enabled = True
        torch.backends.cudnn.benchmark = True
        torch.backends.cudnn.deterministic = False
    return switches(mode, seed)


def _set_cublas_workspace() -> None:
    """cuBLAS reads the variable when CUDA initialises; setting it later has no effect, so refuse that."""
    current = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    if current in (CUBLAS_WORKSPACE, ":16:8"):
        return
    if torch.cuda.is_initialized():
        raise RuntimeError("CUDA was initialised before utils.determinism.configure(): CUBLAS_WORKSPACE_CONFIG can no "
                           "longer take effect. Configure determinism first thing in the process.")
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_WORKSPACE


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)  # the legacy NumPy seed is limited to 32 bits
    torch.manual_seed(seed)  # seeds the CPU generator and every CUDA device
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def seed_model_init(seed: int) -> None:
    """Seed the global torch RNG right before a model is built: its only consumer in training is the weight
    initialisation, so ``--seed-init`` can vary it alone (with ``--seed-init`` unset this repeats ``configure``'s
    seeding, which nothing has drawn from yet)."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, 2**63), got {seed}")
    torch.manual_seed(seed)


def switches(mode: str, seed: int) -> dict:
    """The global state that decides reproducibility, as currently set."""
    return {
        "mode": mode,
        "seed": seed,
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "fill_uninitialized_memory": bool(torch.utils.deterministic.fill_uninitialized_memory),
        "cudnn_enabled": torch.backends.cudnn.enabled,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED"),
        "torch_threads": torch.get_num_threads(),
        "upsample": upsample_kind(mode),
        "augmentation_rng": augmentation_rng(mode),
    }


def upsample_kind(mode: str) -> str:
    """Strict mode uses the expand-based upsample; the other modes keep the stock one, as their recipes do."""
    return "deterministic" if mode == "strict" else "interpolate"


def augmentation_rng(mode: str) -> str:
    """Where augmentation randomness comes from.

    ``per_sample``: a generator keyed by (seed, epoch, sample index), independent of workers.
    ``worker_stream``: the reference post's scheme, one stream per worker reseeded with the constant 0, so
    every worker and every epoch replays the same augmentation sequence (the flaw the post shipped).
    """
    return "worker_stream" if mode == "reference" else "per_sample"


def reference_worker_init(worker_id: int) -> None:
    """The reference post's ``worker_init_fn``: ``np.random.seed(0)`` in every worker, constant by design."""
    np.random.seed(0)

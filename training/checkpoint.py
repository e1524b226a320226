"""Checkpoints: one self-describing dict, written atomically, loaded with ``weights_only=True``.

Contents: model, optimizer, scheduler position, epoch, step, the position inside the epoch, the resolved config,
and every RNG state that matters (python, NumPy, torch CPU, every CUDA device). Data randomness needs no saved
state: it is a pure function of (seed, epoch, index), so the loader position is enough to resume it.
RNG states are stored as tensors and plain Python types, so opening a checkpoint never runs code.
"""
from __future__ import annotations

import pickle
import random
import threading
import zipfile
from pathlib import Path

import numpy as np
import torch

from utils.errors import UserError
from utils.io import atomic_open

FORMAT = 1
# A checkpoint whose largest |parameter| passes this is judged blown up: a trained model stays near 2 here (the COCO
# yolov3-tiny of darknet below 10), diverged runs' checkpoints measured 4e4 to 8e20.
SANE_PARAMETER_LIMIT = 100.0


def capture_rng() -> dict:
    """Every global RNG state, in weights_only-loadable types."""
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": {"version": version, "state": torch.tensor(state, dtype=torch.int64), "gauss": gauss},
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def restore_rng(rng: dict) -> None:
    """Inverse of ``capture_rng``."""
    py = rng["python"]
    random.setstate((py["version"], tuple(py["state"].tolist()), py["gauss"]))
    npy = rng["numpy"]
    np.random.set_state((npy["name"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached"]))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"]:
        if torch.cuda.device_count() != len(rng["cuda"]):
            raise UserError(f"checkpoint holds RNG states of {len(rng['cuda'])} CUDA devices, "
                             f"this process sees {torch.cuda.device_count()}")
        torch.cuda.set_rng_state_all(rng["cuda"])


def save(path: str | Path, state: dict) -> None:
    """Write atomically (utils.io.atomic_open): a kill at any moment leaves the previous file or the new one."""
    try:
        with atomic_open(path, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
    except RuntimeError as exc:
        # torch's zip writer meets a failed write() (a full disk) and then fails again while closing, with a
        # RuntimeError; the OSError that explains it is that error's context.
        cause = exc.__context__
        if isinstance(cause, OSError) and cause.errno is not None:
            raise OSError(cause.errno, cause.strerror, str(path)) from None
        raise


def load(path: str | Path) -> dict:
    """Load a checkpoint on the CPU without executing code; a foreign or damaged file raises ValueError."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: a folder, not a checkpoint; give the run's last.pt or best.pt") from None
    except Exception as exc:  # torch raises several types for damaged or unsafe files; its advice is not ours
        raise UserError(f"{path}: not a loadable checkpoint: {_what_it_is(path, exc)}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise UserError(f"{path}: not a checkpoint of this repo (expected a dict with format {FORMAT})")
    return ckpt


def _what_it_is(path, exc: Exception) -> str:
    """Why ``path`` is no checkpoint, in the user's terms: never torch's advice to load it unsafely."""
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            head = f.read(12)
        version = [int.from_bytes(head[i:i + 4], "little") for i in (0, 4, 8)] if len(head) == 12 else []
        if version and version[0] < 1000 and version[1] < 1000:  # darknet's header: int32 major, minor, revision
            return ("it looks like a darknet .weights file, not a file of train.py; give it a name ending in "
                    ".weights (--weights, eval.py and detect.py read darknet files by that name)")
        return ("not a file torch.save wrote (no zip archive: a truncated or damaged copy, or another kind of "
                "file); give a last.pt or best.pt that train.py wrote")
    if isinstance(exc, pickle.UnpicklingError):
        return ("it holds Python objects other than tensors and plain values (a file of another program, or one "
                "that would run code when opened); this repo never opens such a file: give a checkpoint train.py "
                "wrote")
    return "a damaged torch file (truncated or corrupt archive); give an intact copy, or the run's other checkpoint"


def largest_parameter(path: str | Path, names) -> float:
    """The largest |value| among the learned parameters ``names`` (BN running statistics aside) of a checkpoint's
    model; inf when one is not finite."""
    model = load(path)["model"]
    return max(float(model[n].abs().max()) if torch.isfinite(model[n]).all() else float("inf") for n in names)


def check_model_state(path, saved: dict, model_state: dict) -> None:
    """Refuse a checkpoint whose tensors do not fit the model, naming the offending keys."""
    missing = sorted(set(model_state) - set(saved))
    extra = sorted(set(saved) - set(model_state))
    shapes = sorted(k for k in set(saved) & set(model_state) if saved[k].shape != model_state[k].shape)
    if missing or extra or shapes:
        detail = [f"missing {missing[:5]}" if missing else "", f"unexpected {extra[:5]}" if extra else "",
                  "shape mismatch " + ", ".join(f"{k} {tuple(saved[k].shape)} vs {tuple(model_state[k].shape)}"
                                                for k in shapes[:5]) if shapes else ""]
        raise UserError(f"{path}: checkpoint does not fit this model: " + "; ".join(d for d in detail if d))


def to_host(obj):
    """A copy of a (nested dict/list/tuple of) state with every tensor copied to host memory: a snapshot that
    training can go on changing in place while it is written."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: to_host(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_host(v) for v in obj)
    return obj


class BackgroundWriter:
    """Writes checkpoints on a background thread, one at a time, off the training thread.

    ``submit`` snapshots the state to host memory at the step boundary (``to_host``), waits only if the previous
    write is still running, and returns while the new file is written by ``save`` (atomic: a kill at any moment
    leaves the previous file or the new one). A failed write (a full disk) is raised by the next ``submit`` or by
    ``wait``, which the trainer calls before it finishes.
    """

    def __init__(self):
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def submit(self, path: str | Path, state: dict) -> None:
        self.wait()
        snapshot = to_host(state)
        thread = threading.Thread(target=self._write, args=(path, snapshot), name="checkpoint-writer")
        thread.start()
        # Kept only once started: a Ctrl-C inside start() must not leave wait() a thread it cannot join (a thread
        # that did start goes on writing; the interpreter joins it before the process exits).
        self._thread = thread

    def _write(self, path, state: dict) -> None:
        try:
            save(path, state)
        except BaseException as exc:  # handed to the training thread by wait()
            self._error = exc

    def wait(self) -> None:
        """Block until the last write is on disk; raise its error, if any."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

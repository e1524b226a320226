"""The run directory and its files: ``config.yaml``, ``env.json``, ``metrics.jsonl``, ``summary.json``,
``loss.png`` (checkpoints: training/checkpoint.py; TensorBoard events: training/board.py).

``metrics.jsonl`` holds one line per optimizer step (loss terms, lr, the float32 loss bits ``loss_f32`` and every
``fingerprint_every`` steps ``fingerprint``, 16 hex digits of the parameters' exact fingerprint: sha256 on a CPU,
the on-device fingerprint on an accelerator; so a comparison finds the first divergent step even where printed
losses look equal) and one line per evaluation. The fingerprints are defined in utils/fingerprint.py.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from utils.errors import UserError
from utils.figures import new_figure, save_figure
from utils.io import write_text, write_yaml

LOG = logging.getLogger(__name__)


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


def write_config(run_dir: Path, config: dict) -> None:
    write_yaml(run_dir / "config.yaml", config)


class MetricsLog:
    """Append-only metrics.jsonl: one line per optimizer step and one per evaluation, flushed per line.

    ``mirror``: another sink with the same methods (training.board.Board: TensorBoard events) fed every record.
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
    """The records of metrics.jsonl. A torn last line (a crash or power loss while it was written) is dropped with
    a warning: it was never covered by a checkpoint. Any other unreadable line is an error naming it."""
    with open(path) as f:
        lines = f.read().splitlines()
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number != len(lines):
                raise UserError(f"{path}:{number}: not a JSON line; the metrics log is damaged before its end "
                                "(restore it from a backup, or start a new run)") from None
            LOG.warning("%s:%d: dropped a torn last line (written when the run stopped)", path, number)
    return records


def truncate_metrics(path: str | Path, step: int) -> None:
    """Keep only what the checkpoint at ``step`` has seen: a resumed run replays every later line exactly."""
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def step_losses(records: list[dict]) -> list[str]:
    """The loss_f32 hex of every train record, in step order."""
    return [r["loss_f32"] for r in records if r.get("type") == "train"]


def plot_training_loss(records: list[dict], out_path: str | Path) -> None:
    """loss.png: one run's loss terms per optimizer step (records: metrics.jsonl train lines)."""
    fig = new_figure(8, 4)
    ax = fig.add_subplot()
    steps = [r["step"] for r in records]
    for key in ("total", "box", "obj", "cls"):
        ax.plot(steps, [r[key] for r in records], label=key, lw=1.2 if key == "total" else 0.8)
    ax.set(xlabel="optimizer step", ylabel="loss", yscale="log", title="training loss")
    ax.legend()
    save_figure(fig, out_path)

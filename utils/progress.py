"""Progress on the console, of a training (a tqdm bar per epoch) and of a grid of runs (a bar over the runs): bars on
a terminal, plain lines otherwise (logs, CI)."""
from __future__ import annotations

import sys
import time

from tqdm import tqdm

PLAIN_EVERY = 10  # optimizer steps between plain progress lines


class Progress:
    """Shows loss terms, lr and images/s of each optimizer step; silent on ranks other than 0."""

    def __init__(self, enabled: bool, log=print):
        self.enabled = enabled
        self.log = log
        self.tty = sys.stdout.isatty()
        self.bar = None
        self.epoch = 0

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.close()
        self.epoch = epoch
        if self.enabled and self.tty:
            self.bar = tqdm(desc=f"epoch {epoch + 1}/{epochs}", unit="step", leave=True, dynamic_ncols=True)

    def step(self, record: dict, steps_per_epoch: int) -> None:
        if not self.enabled:
            return
        terms = f"box {record['box']:.3f} obj {record['obj']:.3f} cls {record['cls']:.3f}"
        if self.bar is not None:
            self.bar.total = steps_per_epoch
            self.bar.set_postfix_str(f"loss {record['total']:.4f} ({terms}) lr {record['lr']:.2e} "
                                     f"{record['images_per_s']:.1f} img/s {record['size'][0]}x{record['size'][1]}")
            self.bar.update(1)
        elif record["step"] % PLAIN_EVERY == 0:
            self.log(f"epoch {self.epoch + 1} step {record['step']}: loss {record['total']:.4f} ({terms}) "
                     f"lr {record['lr']:.2e} {record['images_per_s']:.1f} img/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class GridProgress:
    """A grid's progress: one line per finished run and an overall count with the time left, estimated from the
    runs finished in this invocation (runs finished earlier and skipped take no time). A tqdm bar on a terminal,
    the count in each line otherwise."""

    def __init__(self, total: int, skipped: int = 0, log=print):
        self.total, self.done, self.finished_here = total, skipped, 0
        self.log = log
        self.start = time.monotonic()
        self.bar = tqdm(total=total, initial=skipped, desc="grid", unit="run", dynamic_ncols=True) if (
            sys.stdout.isatty()) else None

    def finished(self, line: str) -> None:
        """Count one more run (finished or failed) and show ``line`` with the count and the time left."""
        self.done += 1
        self.finished_here += 1
        elapsed = time.monotonic() - self.start
        left = elapsed / self.finished_here * (self.total - self.done)
        status = f"[{self.done}/{self.total}] {line} ({_duration(elapsed)} so far, about {_duration(left)} left)"
        if self.bar is not None:
            self.bar.set_postfix_str(f"about {_duration(left)} left")
            self.bar.update(1)
            self.bar.write(status)
        else:
            self.log(status)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _duration(seconds: float) -> str:
    """'42 s', '3 min 5 s', '2 h 4 min'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"

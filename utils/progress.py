"""Training progress on the console: a tqdm bar per epoch on a terminal, plain lines otherwise (logs, CI)."""
from __future__ import annotations

import sys

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

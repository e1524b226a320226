"""Where the time of a training loop goes: wall-clock seconds per named section, for benchmarks/loop_profile.py.

A disabled timer (the default everywhere) does nothing: no clock reads and no device synchronisation, so training
pays nothing for the hooks. An enabled one synchronises the CUDA device at every section boundary, so that the
asynchronous kernels of a section are charged to it; that synchronisation is itself a cost, which is why only the
profile enables it.
"""
from __future__ import annotations

import contextlib
import time
from collections import defaultdict

import torch


class SectionTimer:
    """Accumulates seconds per section name; ``section(name)`` is a context manager."""

    def __init__(self, enabled: bool = False, device: torch.device | None = None):
        self.enabled = enabled
        self.sync = enabled and device is not None and device.type == "cuda"
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    @contextlib.contextmanager
    def section(self, name: str):
        if not self.enabled:
            yield
            return
        self._synchronize()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._synchronize()
            self.seconds[name] += time.perf_counter() - start
            self.counts[name] += 1

    def _synchronize(self) -> None:
        if self.sync:
            torch.cuda.synchronize(self.device)


NO_TIMER = SectionTimer(enabled=False)

"""Figures as PNG files: matplotlib's Agg renderer through ``Figure`` objects (no display, no pyplot global
state), saved atomically. The plots themselves live with their data: PR curves in evaluation/metrics.py, the
training loss in training/run_dir.py, run comparisons in experiment/figures.py."""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from utils.io import atomic_open


def new_figure(width: float, height: float, constrained: bool = False) -> Figure:
    """A figure of ``width`` x ``height`` inches."""
    return Figure(figsize=(width, height), layout="constrained" if constrained else None)


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG. No "Software" tag, so the bytes do not change with the matplotlib version."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=dpi, metadata={"Software": None})

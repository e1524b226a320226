"""Shared fixtures: the read-only ../shared folder (absent in a user's clone) and small helpers."""
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def shared_path(*parts: str) -> Path:
    """Path under ../shared, skipping the calling test when it is absent (a user's clone has none)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} not present (../shared is only beside CI and developer checkouts)")
    return path


@pytest.fixture
def darknet_cfg_dir() -> Path:
    return shared_path("darknet_cfg")


@pytest.fixture
def kitti_sample() -> Path:
    return shared_path("kitti_sample")

"""utils/io.py: the one atomic write. A failed write leaves the old file and no temporary file behind."""
import json

import pytest

from utils.io import atomic_open, write_json, write_text, write_yaml


def test_writes_and_leaves_only_the_target(tmp_path):
    write_text(tmp_path / "a.txt", "hello\n")
    write_json(tmp_path / "b.json", {"x": [1, 2]})
    write_yaml(tmp_path / "c.yaml", {"z": 1, "a": 2})
    assert (tmp_path / "a.txt").read_text() == "hello\n"
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2]}
    assert (tmp_path / "c.yaml").read_text() == "z: 1\na: 2\n"  # insertion order kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.json", "c.yaml"]


def test_failure_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "last.pt"
    target.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_open(target, "wb") as f:
            f.write(b"new, half written")
            raise OSError(28, "disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_only_whole_file_modes():
    with pytest.raises(ValueError, match="whole files"):
        with atomic_open("x", "a"):
            pass

"""The file-hash cache: a hit needs the same path, size and mtime; a changed file is read again; a file written
within the racy window is not remembered; a damaged cache costs time, never a wrong hash."""
import hashlib
import json
import os
import time

from utils.file_hashes import RACY_SECONDS, FileHashCache, sha256_file


def _old_file(path, data: bytes, age_s: float = 60.0):
    path.write_bytes(data)
    then = time.time_ns() - int(age_s * 1e9)
    os.utime(path, ns=(then, then))
    return path


def test_sha256_file_is_sha256_of_the_bytes(tmp_path):
    f = _old_file(tmp_path / "f", b"kitti" * 1000)
    assert sha256_file(f) == hashlib.sha256(b"kitti" * 1000).hexdigest()


def test_an_unchanged_file_is_read_once_across_processes_worth_of_caches(tmp_path):
    cache_path, f = tmp_path / "cache" / "h.json", _old_file(tmp_path / "f", b"abc")
    first = FileHashCache(cache_path)
    assert first.sha256(f) == (hashlib.sha256(b"abc").hexdigest(), 3) and first.misses == 1
    first.save()
    second = FileHashCache(cache_path)  # a new object reads what the first one saved
    assert second.sha256(f)[0] == hashlib.sha256(b"abc").hexdigest() and (second.hits, second.misses) == (1, 0)


def test_a_changed_file_of_the_same_size_is_hashed_again(tmp_path):
    cache_path, f = tmp_path / "h.json", _old_file(tmp_path / "f", b"abc")
    cache = FileHashCache(cache_path)
    cache.sha256(f)
    cache.save()
    _old_file(f, b"abd", age_s=30.0)  # same size, another mtime
    again = FileHashCache(cache_path)
    assert again.sha256(f)[0] == hashlib.sha256(b"abd").hexdigest() and again.misses == 1


def test_a_file_written_just_now_is_not_remembered(tmp_path):
    f = tmp_path / "fresh"
    f.write_bytes(b"new")
    cache = FileHashCache(tmp_path / "h.json")
    cache.sha256(f)
    assert str(f) not in cache.entries and RACY_SECONDS > 0


def test_a_damaged_cache_is_ignored_and_rewritten(tmp_path, caplog):
    cache_path, f = tmp_path / "h.json", _old_file(tmp_path / "f", b"abc")
    cache_path.write_text("{not json")
    cache = FileHashCache(cache_path)
    assert cache.sha256(f)[0] == hashlib.sha256(b"abc").hexdigest() and "unreadable file-hash cache" in caplog.text
    cache.save()
    assert list(json.loads(cache_path.read_text())) == [str(f)]


def test_entries_of_deleted_files_are_dropped_on_save(tmp_path):
    cache_path = tmp_path / "h.json"
    a, b = _old_file(tmp_path / "a", b"a"), _old_file(tmp_path / "b", b"b")
    cache = FileHashCache(cache_path)
    cache.sha256(a), cache.sha256(b)
    cache.save()
    b.unlink()
    other = FileHashCache(cache_path)
    other.sha256(_old_file(tmp_path / "c", b"c"))
    other.save()
    assert sorted(json.loads(cache_path.read_text())) == [str(a), str(tmp_path / "c")]


def test_no_cache_path_reads_every_time(tmp_path):
    f = _old_file(tmp_path / "f", b"abc")
    cache = FileHashCache(None)
    cache.sha256(f), cache.sha256(f)
    cache.save()
    assert cache.misses == 2 and not list(tmp_path.glob("*.json"))

"""The data's identity end to end, each run a separate process: a run records the bytes it read (``data_sha256`` in
config.yaml, data_manifest.tsv beside it), and a label file changed between two runs is named by the reproduction
check, by compare.py and by --resume, instead of going unnoticed."""
import pytest

from data.identity import MANIFEST, read_manifest
from tests.conftest import run_python
from tests.faults.conftest import assert_one_error_line, fresh_data, train, tree

pytestmark = pytest.mark.slow  # trains in separate processes: `make test` runs it, `make test-fast` does not


def _change_one_digit(path) -> None:
    """The last digit of a file, changed: the same size, other bytes (what an edited label looks like)."""
    text = path.read_text()
    k = max(i for i, c in enumerate(text) if c.isdigit())
    path.write_text(text[:k] + str((int(text[k]) + 1) % 10) + text[k + 1:])


@pytest.fixture(scope="module")
def changed(tmp_path_factory):
    """runs/a (one epoch) on the data as made, then one train label changed and runs/b on it. Returns (runs folder,
    the changed label's path relative to the data root, b's output)."""
    tmp = tmp_path_factory.mktemp("identity")
    data, runs = fresh_data(tmp / "data"), tmp / "runs"
    train(runs, "a", "--data", str(data), "--epochs", "1", "--burn-in-images", "4", check=True)
    frame = (data / "ImageSets" / "train.txt").read_text().split()[0]
    label = f"training/label_2/{frame}.txt"
    _change_one_digit(data / label)
    second = train(runs, "b", "--data", str(data), "--epochs", "1", "--burn-in-images", "4", check=True)
    return runs, label, second.stdout


def test_a_run_records_its_data_identity(changed):
    runs, label, _ = changed
    sha = [line for line in (runs / "a" / "config.yaml").read_text().splitlines() if line.startswith("data_sha256:")]
    assert len(sha) == 1 and len(sha[0].split()[1]) == 64
    rows = read_manifest(runs / "a" / MANIFEST)
    assert [r[0] for r in rows[:2]] == ["ImageSets/train.txt", "ImageSets/val.txt"] and len(rows) == 2 + 2 * 16
    assert label in [r[0] for r in rows]


def test_reproduction_check_names_the_changed_label(changed):
    runs, label, stdout = changed
    assert "NOT reproduced" not in stdout and "REPRODUCED" not in stdout
    assert "no earlier run with this config, data and environment" in stdout
    assert f"{runs / 'a'}: data {label} differs" in stdout


def test_compare_refuses_runs_on_other_data_naming_the_label(changed):
    runs, label, _ = changed
    done = run_python("compare.py", str(runs / "a"), str(runs / "b"), check=False)
    assert_one_error_line(done, "compare.py", "not comparable", f"data {label} differs: sha256")


def test_resume_on_changed_data_names_the_label_and_changes_nothing(changed):
    runs, label, _ = changed
    before = tree(runs / "a")
    done = train(runs, "ignored", "--resume", str(runs / "a" / "last.pt"))
    assert_one_error_line(done, "train.py", str(runs / "a" / MANIFEST), "the data changed since this run was "
                          f"configured: {label} differs: sha256", "restore the data, or start a new run")
    assert tree(runs / "a") == before and not (runs / "ignored").exists()

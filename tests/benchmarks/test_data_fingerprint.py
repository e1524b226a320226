"""benchmarks/data_fingerprint.py --smoke: the measurement runs end to end and prints its table (figures are not
asserted: speed belongs to the benchmark's output, not to a test)."""
from tests.conftest import REPO, run_python


def test_smoke_prints_the_cost_table():
    out = run_python(str(REPO / "benchmarks" / "data_fingerprint.py"), "--smoke").stdout
    lines = out.splitlines()
    assert lines[0].startswith("smoke (8 synthetic frames): 16 image and label files")
    assert lines[1].startswith("| data | files | MiB | cold s |")
    assert lines[3].startswith("| smoke (8 synthetic frames) | 16 |")
    assert "14,962 files" in lines[4]


def test_without_data_it_says_what_to_give():
    done = run_python(str(REPO / "benchmarks" / "data_fingerprint.py"), check=False)
    assert done.returncode == 2 and "give --data ROOT or --smoke" in done.stderr

"""experiment.report on fabricated runs: a grid whose runs set some sources' seeds apart (--seeds with --seed-init
and --seed-order fixed, the pairs of a --vary group's runs) gets its report, keyed by each run's seeds."""
import json

from experiment.report import write_report
from tests.experiment.test_ab import group


def test_runs_whose_sources_have_their_own_seeds_get_a_report(tmp_path):
    runs = group(tmp_path / "g", [40.0, 42.0], seeds=[202004, 202005], seed_init=202003, seed_order=202003)
    assert runs[0].seed == (202003, 202003, 202004)
    write_report(tmp_path / "out", runs)
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    per_seed = report["within_seed"]["coco_mAP50"]["per_seed"]
    assert sorted(per_seed) == ["202003/202003/202004", "202003/202003/202005"]
    assert report["across_seeds"]["coco_mAP50"]["mean"] == 41.0

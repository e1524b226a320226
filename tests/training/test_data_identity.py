"""The config's data_sha256: recorded when training starts, kept while the config names the same data, refused
(naming the first differing file) when the data's bytes changed since."""
import dataclasses

import pytest

import train
from data.identity import MANIFEST, DataIdentity, write_manifest
from training import build
from training.config import TrainConfig, config_differences, resolve, validate
from utils.errors import UserError

RECORDED = "ab" * 32


def test_a_recorded_data_sha256_is_kept_for_the_same_data_and_dropped_for_other_data():
    base = dataclasses.replace(validate(TrainConfig()), data_sha256=RECORDED)
    parse = train.get_args_parser().parse_args
    assert resolve(parse(["--lr", "0.001"]), base=base).data_sha256 == RECORDED
    for flags in (["--data", "/elsewhere"], ["--train-split", "trainval"], ["--synthetic-num", "32"]):
        assert resolve(parse(flags), base=base).data_sha256 == "", flags
    assert config_differences({}, {"data_sha256": RECORDED}) == []  # a run of an older version recorded none
    assert config_differences({"data_sha256": "cd" * 32}, {"data_sha256": RECORDED}) != []


def test_the_data_identity_is_recorded_and_a_change_refused_naming_the_file(tmp_path):
    before = DataIdentity((("ImageSets/train.txt", "0" * 64, 7), ("training/label_2/000003.txt", "1" * 64, 90)))
    after = DataIdentity((before.rows[0], ("training/label_2/000003.txt", "2" * 64, 90)))
    cfg = build.with_data_identity(validate(TrainConfig()), before)
    assert cfg.data_sha256 == before.sha256 and build.with_data_identity(cfg, before) == cfg
    write_manifest(tmp_path / MANIFEST, before)
    with pytest.raises(UserError, match=rf"{MANIFEST}: the data changed since this run was configured: "
                                        r"training/label_2/000003.txt differs: sha256 111111111111\.\.\. \(90 bytes\) "
                                        r"recorded, 222222222222\.\.\. \(90 bytes\) now"):
        build.with_data_identity(cfg, after, tmp_path / MANIFEST)
    with pytest.raises(UserError, match=r"the synthetic set: the data changed .* restore the data, or start a new"):
        build.with_data_identity(cfg, after, tmp_path / "missing" / MANIFEST)

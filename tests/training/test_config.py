"""Config resolution: defaults < preset < flags; unknown keys and bad values fail with the key named."""
import dataclasses
import re

import pytest

import train
from tests.conftest import REPO
from training.config import (
    TrainConfig,
    config_differences,
    from_dict,
    load_yaml,
    to_dict,
    validate,
)


def resolve(argv, tmp_path=None):
    return train.resolve_config(train.get_args_parser().parse_args(argv))


def test_defaults_preset_and_flags(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("epochs: 3\nimg_size: [320, 96]\nclasses: Car,Pedestrian\n")
    cfg = resolve(["--config", str(preset), "--epochs", "5", "--amp", "false"])
    assert cfg.epochs == 5 and cfg.img_size == (320, 96) and cfg.classes == ("Car", "Pedestrian")
    assert cfg.amp == "off" and cfg.lr == TrainConfig().lr
    assert resolve(["--amp", "on"]).amp == "on" and resolve(["--amp", "auto"]).amp in ("on", "off")


def test_round_trip_through_plain_dict():
    cfg = validate(TrainConfig())  # validated: amp auto resolved to on or off
    assert cfg.amp in ("on", "off") and from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize("argv, message", [
    (["--epochs", "x"], "epochs expects int"),
    (["--img-size", "400,128"], "multiples of 32"),
    (["--determinism", "fast"], "determinism must be one of"),
    (["--batch-size", "0"], r"batch_size out of range \(batch_size >= 1\)"),
    (["--amp", "maybe"], "amp must be one of auto, on, off"),
])
def test_bad_values_are_named(argv, message):
    with pytest.raises(ValueError, match=message):
        resolve(argv)


def test_unknown_preset_key_is_named(tmp_path):
    preset = tmp_path / "bad.yaml"
    preset.write_text("epochs: 2\nlearning_rate: 0.1\n")
    with pytest.raises(ValueError, match=r"bad.yaml: unknown config key\(s\) learning_rate"):
        load_yaml(preset)


def test_unknown_flag_fails(capsys):
    with pytest.raises(SystemExit):
        train.get_args_parser().parse_args(["--learning-rate", "0.1"])
    assert "unrecognized arguments" in capsys.readouterr().err


def test_every_config_key_is_read_by_the_code():
    """A key nothing reads is a flag that does nothing: each must appear as ``cfg.<key>`` outside its definition."""
    sources = [p for folder in ("utils", "data", "models", "evaluation", "training", "experiment")
               for p in (REPO / folder).glob("*.py")] + list(REPO.glob("*.py"))
    code = "\n".join(p.read_text() for p in sources)
    flags = [f.name for f in dataclasses.fields(TrainConfig) if not f.metadata.get("derived")]  # hashes: no flags
    unread = [k for k in flags if not re.search(rf"cfg\.{k}\b", code)]
    assert not unread, f"config keys no code reads: {unread}"


def test_config_differences_fill_defaults_and_ignore_operational_keys():
    assert config_differences({"lr": 0.1}, {"lr": 0.2, "workers": 4, "max_steps": 3}) == ["lr: 0.1 -> 0.2"]
    assert config_differences({"lr": 0.1}, {"lr": 0.1, "epochs": 60}) == []  # 60 is the default
    # a model hash an older run never recorded is no difference; two recorded hashes that differ are
    assert config_differences({}, {"model_file_sha256": "ab"}) == []
    assert config_differences({"model_file_sha256": "cd"}, {"model_file_sha256": "ab"}) == [
        "model_file_sha256: 'cd' -> 'ab'"]


@pytest.mark.parametrize("device, native_bf16, expected", [
    ("cpu", False, "off"),  # emulated bf16 is slower than fp32
    ("cpu", True, "on"),
    ("cuda", False, "on"),  # every CUDA device autocasts (the CPU's instructions do not matter)
])
def test_amp_auto_resolves_by_hardware(monkeypatch, device, native_bf16, expected):
    import utils.environment
    monkeypatch.setattr(utils.environment, "cpu_has_native_bf16", lambda: native_bf16)
    cfg = validate(dataclasses.replace(TrainConfig(), device=device, amp="auto"))
    assert cfg.amp == expected
    assert validate(dataclasses.replace(cfg, amp="off")).amp == "off"  # an explicit choice is kept


def test_a_renamed_key_of_an_older_config_reads_under_its_new_name():
    """Run directories and checkpoints written while --max-steps was called stop_after still load."""
    assert from_dict({"stop_after": 3}).max_steps == 3
    assert config_differences({"stop_after": 3}, {"max_steps": 0}) == []  # an operational key either way

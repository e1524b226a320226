"""training/board.py: TensorBoard scalars mirror metrics.jsonl records (read back with tensorboard's own reader)."""
import pytest

from training.board import Board, flatten

pytest.importorskip("tensorboard", reason="tensorboard is optional; requirements.txt installs it")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def read_scalars(run_dir) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_board_writes_train_and_eval_scalars(tmp_path):
    board = Board(tmp_path)
    for step, total in ((1, 12.5), (2, 7.25)):
        board.write({"type": "train", "step": step, "epoch": 0, "batch": step, "lr": 0.001 * step, "size": [416, 128],
                     "box": 1.0, "obj": 2.0, "cls": 3.0, "total": total, "loss_f32": "00", "images_per_s": 50.0})
    board.write({"type": "eval", "step": 2, "epoch": 1, "headline": 40.5,
                 "coco": {"mAP50": 61.0, "mAP": 30.0}, "kitti": {"Car": {"AP40": {"moderate": 55.5}}}})
    board.close()
    scalars = read_scalars(tmp_path)
    assert scalars["train/total"] == [(1, 12.5), (2, 7.25)]
    assert [s for s, _ in scalars["train/lr"]] == [1, 2] and scalars["train/lr"][1][1] == pytest.approx(0.002)
    assert scalars["eval/headline"] == [(2, 40.5)] and scalars["eval/coco/mAP50"] == [(2, 61.0)]
    assert scalars["eval/kitti/Car/AP40/moderate"] == [(2, 55.5)]
    assert "train/size" not in scalars and "eval/epoch" not in scalars


def test_flatten_keeps_numbers_only():
    tree = {"a": 1, "b": {"c": 2.5, "d": "text", "e": True, "f": None}, "g": [1, 2]}
    assert flatten(tree, "x") == [("x/a", 1.0), ("x/b/c", 2.5)]

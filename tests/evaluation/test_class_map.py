"""evaluation/class_map.py: resolving a map against a model's classes, its errors, and the scores it gives."""
import pytest
import torch

from evaluation.class_map import COCO_TO_KITTI, describe, load_class_map, map_scores
from utils.errors import UserError

COCO_HEAD = ["person", "bicycle", "car", "motorbike", "aeroplane", "bus", "train", "truck", "boat"]


def test_builtin_coco_kitti_map():
    cmap = load_class_map("coco-kitti", COCO_HEAD)
    assert cmap.targets == ("Car", "Truck", "Pedestrian", "Cyclist", "Tram")
    assert cmap.sources == ((2,), (7,), (0,), (1,), (6,))
    assert cmap.dropped == ("motorbike", "aeroplane", "bus", "boat")
    assert cmap.pairs == tuple(COCO_TO_KITTI.items())
    assert describe(cmap) == ("class map coco-kitti: car -> Car, truck -> Truck, person -> Pedestrian, bicycle -> "
                              "Cyclist, train -> Tram; 4 class(es) without a KITTI counterpart dropped: motorbike, "
                              "aeroplane, bus, boat")


def test_a_map_file_may_send_several_classes_to_one(tmp_path):
    scores = torch.tensor([[0.1, 0.7, 0.3, 0.2], [0.6, 0.1, 0.05, 0.9]])  # (2 candidates, 4 model classes)
    (tmp_path / "map.yaml").write_text("van: Car\ncar: Car\nperson: Pedestrian\n")
    cmap = load_class_map(str(tmp_path / "map.yaml"), ["car", "van", "person", "dog"])
    assert cmap.targets == ("Car", "Pedestrian") and cmap.sources == ((1, 0), (2,)) and cmap.dropped == ("dog",)
    # each target scores the best of its sources: Car = max(van, car), Pedestrian = person
    assert torch.equal(map_scores(scores, cmap.sources), torch.tensor([[0.7, 0.3], [0.6, 0.05]]))


@pytest.mark.parametrize("text,message", [("car: Automobile\n", "'Automobile' is not a KITTI class"),
                                          ("lorry: Truck\n", "'lorry' not in the model's classes"),
                                          ("car: [Car\n", "not valid YAML"),
                                          ("- car\n", "non-empty mapping")])
def test_a_bad_map_file_is_named(tmp_path, text, message):
    path = tmp_path / "map.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as info:
        load_class_map(str(path), COCO_HEAD)
    assert str(path) in str(info.value)


def test_an_unknown_map_name_lists_the_built_in_ones():
    with pytest.raises(UserError, match="no such class map file, and not a built-in map .built-in: coco-kitti"):
        load_class_map("coco-to-kitti", COCO_HEAD)

"""Paired transforms: hand-computed letterbox geometry, exact flips, boxes that follow the image, seeded jitter."""
import numpy as np
import pytest

from data.transforms import (
    AugmentConfig,
    Letterbox,
    augment,
    hflip,
    hsv_jitter,
    _darknet_resize_rows,
    letterbox,
    letterbox_boxes,
    letterbox_darknet,
    random_affine,
    unletterbox_boxes,
)

KITTI_SIZES = [(1242, 375), (1224, 370)]
INPUT_SIZES = [(416, 128), (320, 96), (608, 192), (1248, 384), (416, 416)]


def noise(w, h, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def block_image(w, h, box):
    """Black frame with the integer xyxy box painted white."""
    image = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    return image


def bright_extent(image_hwc):
    """Continuous xyxy extent of pixels brighter than mid-grey (channel 0)."""
    ys, xs = np.nonzero(image_hwc[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)


def test_hflip_twice_is_identity_for_image_and_boxes():
    image = noise(37, 11)
    boxes = np.random.default_rng(1).integers(0, 37 * 64, (20, 4)) / 64.0  # a 1/64-px grid: width - x is exact
    image1, boxes1 = hflip(image, boxes)
    image2, boxes2 = hflip(image1, boxes1)
    assert np.array_equal(image2, image) and np.array_equal(boxes2, boxes)
    assert not np.array_equal(image1, image)


def test_hflip_hand_computed():
    image, boxes = hflip(block_image(10, 4, (1, 0, 4, 2)), np.array([[1.0, 0.0, 4.0, 2.0]]))
    assert boxes.tolist() == [[6.0, 0.0, 9.0, 2.0]]
    assert bright_extent(image).tolist() == [6.0, 0.0, 9.0, 2.0]


@pytest.mark.parametrize("frame", KITTI_SIZES)
@pytest.mark.parametrize("size", INPUT_SIZES)
def test_letterbox_boxes_round_trip(frame, size):
    w, h = frame
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 1, (50, 4)) * [w, h, w, h]
    boxes = np.concatenate([np.minimum(xy[:, :2], xy[:, 2:]), np.maximum(xy[:, :2], xy[:, 2:])], axis=1)
    image, lb = letterbox(noise(w, h), size)
    assert image.shape == (size[1], size[0], 3) and image.dtype == np.uint8
    assert np.abs(unletterbox_boxes(letterbox_boxes(boxes, lb), lb) - boxes).max() < 1e-4


def test_letterbox_hand_computed_and_centred():
    # 1242x375 into 416x416: scale 416/1242, content 416 x round(125.6) = 126 rows, pads 145 top / 145 bottom.
    image, lb = letterbox(np.full((375, 1242, 3), 200, np.uint8), (416, 416))
    assert lb == Letterbox(416 / 1242, 416 / 1242, 0, 145, 1242, 375)
    rows = image[:, :, 0].max(axis=1)
    assert (rows[:145] == 114).all() and (rows[145:271] == 200).all() and (rows[271:] == 114).all()
    # 1224x370 into 416x128: scale min(0.3399, 0.3459) = 416/1224, content 416 x 126, pads 1 top / 1 bottom.
    image, lb = letterbox(np.full((370, 1224, 3), 200, np.uint8), (416, 128))
    assert (lb.pad_x, lb.pad_y, lb.scale_x, lb.scale_y) == (0, 1, 416 / 1224, 416 / 1224)
    assert (image[0] == 114).all() and (image[1:127] == 200).all() and (image[127] == 114).all()
    # A tall frame pads left and right instead: 100x200 into 64x64 -> 32x64 content, pads 16 / 16.
    image, lb = letterbox(np.full((200, 100, 3), 200, np.uint8), (64, 64))
    assert (lb.pad_x, lb.pad_y) == (16, 0) and (image[:, 16:48] == 200).all() and (image[:, :16] == 114).all()


def test_darknet_resize_hand_computed():
    """darknet's resize_image maps corner pixel centres onto each other: n = 4 -> 3 rows reads rows 0, 1.5, 3."""
    rows = np.array([0, 10, 20, 30], np.float32).reshape(4, 1)
    assert _darknet_resize_rows(rows, 3, vertical=False).ravel().tolist() == [0, 15, 30]
    # upsampling 2 -> 4 reads rows 0, 1/3, 2/3, 1 (float32 weights)
    up = _darknet_resize_rows(np.array([[0], [10]], np.float32), 4, vertical=True).ravel()
    assert up.dtype == np.float32 and up.tolist() == pytest.approx([0, 10 / 3, 20 / 3, 10], abs=1e-5)


def test_darknet_resize_keeps_darknets_last_row():
    """darknet's vertical pass keeps only (1 - d) * src[i] in its last row: when r * scale rounds below n - 1 (here
    n = 14 -> 12 rows: 11 * float32(13 / 11) = 12.999999) that row is nearly black, and so it is here."""
    column = np.arange(1, 15, dtype=np.float32).reshape(14, 1)
    position = np.float32(11) * (np.float32(13) / np.float32(11))
    assert position < 13
    last = _darknet_resize_rows(column, 12, vertical=True)[-1, 0]
    assert last == (np.float32(1) - (position - np.float32(12))) * np.float32(13) and last < 1e-4
    assert _darknet_resize_rows(column, 12, vertical=False)[-1, 0] == 14  # the horizontal pass copies it


def test_letterbox_darknet_geometry_and_grey():
    """1242x375 into 416x416 as darknet does it: content 416 x (375 * 416 // 1242 = 125) rows at offset 145, grey 0.5
    elsewhere, float32 RGB in [0, 1] (channels not swapped); the corner pixel centres map onto each other."""
    image = np.zeros((375, 1242, 3), np.uint8)
    image[..., 0], image[..., 2] = 200, 10
    boxed, lb = letterbox_darknet(image, (416, 416))
    assert boxed.dtype == np.float32 and boxed.shape == (416, 416, 3)
    assert (boxed[:145] == 0.5).all() and (boxed[270:] == 0.5).all()
    assert np.allclose(boxed[145:270, :, 0], 200 / 255) and np.allclose(boxed[145:270, :, 2], 10 / 255)
    assert (lb.orig_w, lb.orig_h, lb.scale_x, lb.scale_y) == (1242, 375, 415 / 1241, 124 / 374)
    centres = letterbox_boxes(np.array([[0.5, 0.5, 1241.5, 374.5]]), lb)[0]
    assert centres == pytest.approx([0.5, 145.5, 415.5, 269.5])
    assert letterbox_darknet(image, (416, 416), pad_value=114 / 255)[0][0, 0, 0] == np.float32(114 / 255)


@pytest.mark.parametrize("frame", KITTI_SIZES)
def test_letterbox_darknet_round_trip_and_boxes_follow(frame):
    w, h = frame
    box = (300, 100, 700, 300)
    image, lb = letterbox_darknet(block_image(w, h, box), (832, 256), pad_value=0.0)
    assert np.abs(bright_extent(image * 255) - letterbox_boxes(np.array([box]), lb)[0]).max() <= 1.0
    boxes = np.array([[10.25, 20.5, 400.0, 300.75]])
    assert np.abs(unletterbox_boxes(letterbox_boxes(boxes, lb), lb) - boxes).max() < 1e-9


def test_letterbox_boxes_follow_the_image():
    box = (300, 100, 700, 300)
    image, lb = letterbox(block_image(1242, 375, box), (416, 128))
    assert np.abs(bright_extent(image) - letterbox_boxes(np.array([box]), lb)[0]).max() <= 1.0


@pytest.mark.parametrize("size", [(400, 128), (416, 100), (0, 32), (416,), (416.0, 128)])
def test_input_size_must_be_multiples_of_32(size):
    with pytest.raises(ValueError, match="multiples of 32"):
        letterbox(noise(64, 32), size)


def test_random_affine_seeded_deterministic_and_boxes_inside():
    image = noise(160, 64)
    boxes = np.array([[10, 5, 60, 40], [100, 10, 159, 63], [0, 0, 160, 64], [150, 50, 160, 64.0]])
    kwargs = dict(scale=(0.5, 1.5), translate=0.2)
    first = random_affine(np.random.default_rng(3), image, boxes, **kwargs)
    second = random_affine(np.random.default_rng(3), image, boxes, **kwargs)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    for seed in range(20):
        out, kept, keep = random_affine(np.random.default_rng(seed), image, boxes, **kwargs)
        assert out.shape == image.shape and keep.dtype == bool and len(kept) == keep.sum()
        assert (kept >= 0).all() and (kept[:, [0, 2]] <= 160).all() and (kept[:, [1, 3]] <= 64).all()
        assert (kept[:, 2:] - kept[:, :2] >= 2).all()


def test_random_affine_moves_boxes_with_the_image_and_drops_lost_ones():
    # Zoom 0.5 about the centre (80, 32) with no shift: x -> 0.5 x + 40, y -> 0.5 y + 16.
    image = block_image(160, 64, (20, 8, 100, 48))
    out, kept, keep = random_affine(np.random.default_rng(0), image, np.array([[20, 8, 100, 48.0]]), scale=(0.5, 0.5))
    assert kept.tolist() == [[50.0, 20.0, 90.0, 40.0]] and keep.tolist() == [True]
    assert np.abs(bright_extent(out) - kept[0]).max() <= 1.0
    # Zoom 2 about the centre: x -> 2x - 80. A box that ends up 90% outside is dropped, one fully inside is kept.
    boxes = np.array([[0, 20, 44, 40], [60, 20, 100, 40.0]])
    _, kept, keep = random_affine(np.random.default_rng(0), image, boxes, scale=(2.0, 2.0))
    assert keep.tolist() == [False, True] and kept.tolist() == [[40.0, 8.0, 120.0, 48.0]]


def test_hsv_jitter_is_seeded():
    image = noise(32, 16)
    a = hsv_jitter(np.random.default_rng(5), image, 0.1, 0.7, 0.4)
    b = hsv_jitter(np.random.default_rng(5), image, 0.1, 0.7, 0.4)
    assert np.array_equal(a, b) and a.shape == image.shape and not np.array_equal(a, image)


FULL = AugmentConfig(flip_p=0.5, hsv=(0.015, 0.7, 0.4), scale=(0.5, 1.5), translate=0.1)


def test_augment_shapes_determinism_and_dontcare_moving_like_boxes():
    image = noise(1242, 375)
    boxes = np.array([[100, 100, 300, 250], [600, 150, 700, 200.0]])
    cls = np.array([2, 0])
    for seed in range(6):
        out = augment(np.random.default_rng(seed), image, boxes, cls, boxes, (416, 128), FULL)
        again = augment(np.random.default_rng(seed), image, boxes, cls, boxes, (416, 128), FULL)
        assert all(np.array_equal(a, b) for a, b in zip(out[:4], again[:4])) and out[4] == again[4]
        chw, out_boxes, out_cls, dontcare, lb = out
        assert chw.shape == (3, 128, 416) and chw.dtype == np.uint8 and chw.flags.c_contiguous
        assert np.array_equal(out_boxes, dontcare) and len(out_cls) == len(out_boxes)
        assert lb.orig_w == 1242 and lb.orig_h == 375


def test_augment_flip_probability_and_letterbox_only_path():
    image, boxes = noise(1242, 375), np.array([[100, 100, 300, 250.0]])
    size, empty = (416, 128), np.zeros((0, 4))
    plain = augment(np.random.default_rng(0), image, boxes, [1], empty, size, AugmentConfig(flip_p=0.0))
    flipped = augment(np.random.default_rng(0), image, boxes, [1], empty, size, AugmentConfig(flip_p=1.0))
    expected_image, lb = letterbox(image, size)
    assert np.array_equal(plain[0], expected_image.transpose(2, 0, 1))
    assert np.array_equal(plain[1], letterbox_boxes(boxes, lb)) and plain[2].tolist() == [1]
    assert np.array_equal(flipped[0], plain[0][:, :, ::-1])
    assert np.allclose(flipped[1], [[416 - plain[1][0, 2], plain[1][0, 1], 416 - plain[1][0, 0], plain[1][0, 3]]])
    flips = [augment(np.random.default_rng(s), image, boxes, [1], empty, size)[1][0, 0] != plain[1][0, 0]
             for s in range(40)]
    assert 8 < sum(flips) < 32  # default flip_p = 0.5


@pytest.mark.parametrize("kwargs", [{"flip_p": 1.5}, {"hsv": (0.1, -0.1, 0.0)}, {"hsv": (0.1,)}, {"scale": (1.5, 0.5)},
                                    {"translate": 0.9}])
def test_augment_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError, match="AugmentConfig"):
        AugmentConfig(**kwargs)

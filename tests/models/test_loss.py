"""Hand-computed cases for target assignment, the ignore rule, DontCare masking and the duplicate rule."""
import math
from dataclasses import dataclass

import pytest
import torch

from models.loss import build_targets, yolo_loss


@dataclass(frozen=True)
class Head:
    anchors: tuple
    stride: int
    num_classes: int = 2
    ignore_thresh: float = 0.5


# Two heads: stride 32 with large anchors, stride 16 with small ones; input 128x64.
HEADS = (Head(((40, 40), (80, 30)), 32), Head(((10, 10), (20, 8)), 16))
SIZE = (128, 64)
GRIDS = [(2, 4), (4, 8)]


def raw_outputs(n=1, fill=0.0, requires_grad=False):
    return [torch.full((n, 2 * 7, h, w), fill, requires_grad=requires_grad) for h, w in GRIDS]


def test_assignment_picks_best_anchor_across_heads_and_centre_cell():
    # 20x8 box centred at (50, 20): best shape match is head 1 anchor 1 (identical shape), cell (gi 3, gj 1).
    targets = torch.tensor([[0, 1, 40, 16, 60, 24.0]])
    a = build_targets(targets, HEADS, GRIDS, SIZE)
    assert (a.head.tolist(), a.anchor.tolist(), a.gi.tolist(), a.gj.tolist()) == ([1], [1], [3], [1])
    torch.testing.assert_close(a.txy, torch.tensor([[50 / 16 - 3, 20 / 16 - 1]]))
    torch.testing.assert_close(a.twh, torch.zeros(1, 2), atol=1e-6, rtol=0)
    torch.testing.assert_close(a.weight, torch.tensor([2 - (20 / 128) * (8 / 64)]))
    # 80x30 box centred at (64, 40): head 0 anchor 1, cell (2, 1); twh = log(1) = 0.
    a = build_targets(torch.tensor([[0, 0, 24, 25, 104, 55.0]]), HEADS, GRIDS, SIZE)
    assert (a.head.tolist(), a.anchor.tolist(), a.gi.tolist(), a.gj.tolist()) == ([0], [1], [2], [1])


def test_anchor_ties_go_to_lowest_index():
    heads = (Head(((10, 10), (10, 10)), 16),)
    a = build_targets(torch.tensor([[0, 0, 0, 0, 10, 10.0]]), heads, [(4, 8)], SIZE)
    assert a.anchor.tolist() == [0]


def test_duplicate_rule_keeps_larger_box_whatever_the_order():
    small = [0, 0, 41, 17, 59, 23.0]   # 18x6, centre (50, 20) -> head 1 anchor 1, cell (3, 1)
    large = [0, 1, 40, 16, 60, 24.0]   # 20x8, same slot
    for rows in ([small, large], [large, small]):
        a = build_targets(torch.tensor(rows), HEADS, GRIDS, SIZE)
        assert a.cls.tolist() == [1], rows
    # Equal areas: the lower target row wins.
    a = build_targets(torch.tensor([[0, 0, 40, 16, 60, 24.0], [0, 1, 40, 16, 60, 24.0]]), HEADS, GRIDS, SIZE)
    assert a.cls.tolist() == [0]
    # Same slot in different images are not duplicates.
    a = build_targets(torch.tensor([small, [1] + large[1:]]), HEADS, GRIDS, SIZE)
    assert sorted(a.image.tolist()) == [0, 1]


def test_zero_outputs_give_hand_computed_loss_without_targets():
    # All logits 0: every objectness BCE is log 2; 2 anchors x (8 + 32) cells are all background.
    empty = torch.zeros((0, 6))
    loss = yolo_loss(raw_outputs(), HEADS, empty, torch.zeros((0, 5)), SIZE)
    assert math.isclose(loss["obj"].item(), 80 * math.log(2), rel_tol=1e-6)
    assert loss["box"].item() == 0 and loss["cls"].item() == 0


def entropy(t: float) -> float:
    return -(t * math.log(t) + (1 - t) * math.log(1 - t))


def test_single_target_hand_computed_terms():
    targets = torch.tensor([[0, 1, 40, 16, 60, 24.0]])  # exact anchor shape -> twh target 0
    loss = yolo_loss(raw_outputs(), HEADS, targets, torch.zeros((0, 5)), SIZE)
    # txy targets (50/16-3, 20/16-1) = (0.125, 0.25); tx = ty = 0 gives BCE log 2 each, minus the entropy of the
    # target; twh error 0. Weight 2 - w*h with w, h relative to the input.
    weight = 2 - (20 / 128) * (8 / 64)
    expected_box = weight * (2 * math.log(2) - entropy(0.125) - entropy(0.25))
    assert math.isclose(loss["box"].item(), expected_box, rel_tol=1e-6)
    legacy = yolo_loss(raw_outputs(), HEADS, targets, torch.zeros((0, 5)), SIZE, box_loss="sigmoid_l2")
    assert math.isclose(legacy["box"].item(), weight * ((0.5 - 0.125) ** 2 + (0.5 - 0.25) ** 2), rel_tol=1e-6)
    assert math.isclose(loss["cls"].item(), 2 * math.log(2), rel_tol=1e-6)
    # No prediction overlaps the ground truth with IoU > 0.21, so: 1 positive + 79 background, log 2 each.
    assert math.isclose(loss["obj"].item(), 80 * math.log(2), rel_tol=1e-6)


def test_ignore_rule_skips_background_overlapping_ground_truth():
    # Zero outputs decode to anchor-sized boxes at cell centres. Ground truth: 36x36 centred at (48, 16), assigned to
    # head 0 anchor 0 (40x40) at cell (1, 0). Head 0 anchor 1 (80x30) at that cell decodes to [8, 1, 88, 31], IoU
    # 1080 / 2616 = 0.413 with it; every other prediction has IoU < 0.28.
    gt = torch.tensor([[0, 0, 30, -2, 66, 34.0]])
    a = build_targets(gt, HEADS, GRIDS, SIZE)
    assert (a.head.item(), a.anchor.item(), a.gi.item(), a.gj.item()) == (0, 0, 1, 0)
    for thresh, background in ((0.5, 79), (0.3, 78)):
        heads = (Head(HEADS[0].anchors, 32, ignore_thresh=thresh), HEADS[1])
        obj = yolo_loss(raw_outputs(), heads, gt, torch.zeros((0, 5)), SIZE)["obj"].item()
        # one positive at p = 0.5 (log 2) plus every background prediction (log 2 each)
        assert math.isclose(obj, (1 + background) * math.log(2), rel_tol=1e-6), thresh


def test_ignore_regions_mask_background_by_cell_centre():
    # A DontCare region covering the left half of the image: cells with centres x < 64 lose background loss.
    region = torch.tensor([[0, 0, 0, 64, 64.0]])
    loss = yolo_loss(raw_outputs(), HEADS, torch.zeros((0, 6)), region, SIZE)
    # Head 0 (W=4, centres 16, 48, 80, 112): 2 of 4 columns masked; head 1 (W=8): 4 of 8. Half of 80 remain.
    assert math.isclose(loss["obj"].item(), 40 * math.log(2), rel_tol=1e-6)
    # A region of another image changes nothing for image 0.
    other = torch.tensor([[1, 0, 0, 64, 64.0]])
    loss2 = yolo_loss(raw_outputs(n=2), HEADS, torch.zeros((0, 6)), other, SIZE)
    assert math.isclose(loss2["obj"].item(), (80 + 40) * math.log(2) / 2, rel_tol=1e-6)


def test_loss_is_differentiable_and_normalised_per_image():
    outs = raw_outputs(n=2, requires_grad=True)
    targets = torch.tensor([[0, 1, 40, 16, 60, 24.0], [1, 0, 24, 25, 104, 55.0]])
    loss = yolo_loss(outs, HEADS, targets, torch.zeros((0, 5)), SIZE)
    loss["total"].backward()
    assert all(o.grad is not None and torch.isfinite(o.grad).all() for o in outs)
    assert set(loss) == {"box", "obj", "cls", "total"}


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_gradients_equal_darknet_deltas_on_a_hand_built_case():
    """darknet's yolo_layer.c sets, for the assigned prediction, delta = scale * (t - sigmoid(x)) on tx, ty (no
    sigmoid derivative), scale * (t - x) on tw, th, 1 - sigmoid(o) on objectness, onehot - sigmoid(c) on classes,
    and -sigmoid(o) on background objectness; the loss's gradient must be -delta / images."""
    outs = [o.detach().clone() for o in raw_outputs(n=2)]
    # target 20x8 centred at (50, 20) in image 1: head 1, anchor 1 (20x8), cell (gi 3, gj 1); txy (0.125, 0.25)
    raw = {"x": 0.3, "y": -0.7, "w": 0.2, "h": -0.1, "o": 0.5, "c0": 0.1, "c1": -0.2}
    head1 = outs[1].view(2, 2, 7, 4, 8)  # (N, A, 5+C, H, W)
    head1[1, 1, :, 1, 3] = torch.tensor(list(raw.values()))
    outs = [o.requires_grad_() for o in outs]
    targets = torch.tensor([[1, 1, 40, 16, 60, 24.0]])
    yolo_loss(outs, HEADS, targets, torch.zeros((0, 5)), SIZE)["total"].backward()
    grad = outs[1].grad.view(2, 2, 7, 4, 8)[1, 1, :, 1, 3]
    scale, tw, th = 2 - (20 / 128) * (8 / 64), 0.0, 0.0
    delta = [scale * (0.125 - sigmoid(raw["x"])), scale * (0.25 - sigmoid(raw["y"])), scale * (tw - raw["w"]),
             scale * (th - raw["h"]), 1 - sigmoid(raw["o"]), 0 - sigmoid(raw["c0"]), 1 - sigmoid(raw["c1"])]
    assert grad.tolist() == pytest.approx([-d / 2 for d in delta], rel=1e-5, abs=1e-7)
    # a background prediction of image 0 (all raw outputs 0): objectness delta -sigmoid(0), nothing else
    background = outs[0].grad.view(2, 2, 7, 2, 4)[0, 0, :, 0, 0]
    assert background.tolist() == pytest.approx([0, 0, 0, 0, 0.5 / 2, 0, 0])


def test_gradients_equal_darknet_deltas_everywhere_on_random_outputs():
    """Random raw outputs, several targets on both heads, an ignore region: every entry of every head's gradient is
    -delta / images, with delta computed element by element as darknet does (positives from build_targets,
    background from the ignore rule)."""
    from models.head import split_head
    from models.loss import _background_mask
    torch.manual_seed(0)
    outs = [(torch.randn(2, 14, h, w) * 1.5).requires_grad_() for h, w in GRIDS]
    targets = torch.tensor([[0, 1, 40, 16, 60, 24.0], [0, 0, 2, 2, 38, 34.0], [1, 1, 70, 20, 120, 60.0],
                            [1, 0, 10, 30, 22, 40.0]])
    ignore = torch.tensor([[1, 0, 0, 30, 30.0]])
    yolo_loss(outs, HEADS, targets, ignore, SIZE)["total"].backward()
    assign = build_targets(targets, HEADS, GRIDS, SIZE)
    for h, (out, head) in enumerate(zip(outs, HEADS)):
        pred = split_head(out.detach(), 2)  # (N, A, H, W, 7)
        delta = torch.zeros_like(pred)
        positive = torch.zeros(pred.shape[:4], dtype=torch.bool)
        for k in torch.nonzero(assign.head == h).flatten().tolist():
            b, a, j, i = (int(t[k]) for t in (assign.image, assign.anchor, assign.gj, assign.gi))
            p, s = pred[b, a, j, i], float(assign.weight[k])
            delta[b, a, j, i, 0:2] = s * (assign.txy[k] - p[0:2].sigmoid())
            delta[b, a, j, i, 2:4] = s * (assign.twh[k] - p[2:4])
            delta[b, a, j, i, 4] = 1 - p[4].sigmoid()
            delta[b, a, j, i, 5:] = torch.nn.functional.one_hot(assign.cls[k], 2) - p[5:].sigmoid()
            positive[b, a, j, i] = True
        background = _background_mask(pred, head, targets, ignore) & ~positive
        delta[..., 4] = torch.where(background, -pred[..., 4].sigmoid(), delta[..., 4])
        torch.testing.assert_close(split_head(out.grad, 2), -delta / 2, rtol=1e-5, atol=1e-7)


def test_obj_norm_cells_scales_objectness_to_the_reference_area_and_ignores_the_input_size():
    # All logits 0, no targets: 80 background predictions of log 2 each at 128x64 (test_zero_outputs_...).
    # "cells" scales by 416*128 / (128*64) = 6.5; at twice the input (4x the cells) it gives the same value,
    # where darknet's sum grows 4x.
    empty, no_regions = torch.zeros((0, 6)), torch.zeros((0, 5))
    cells = yolo_loss(raw_outputs(), HEADS, empty, no_regions, SIZE, obj_norm="cells")
    assert math.isclose(cells["obj"].item(), 80 * math.log(2) * 6.5, rel_tol=1e-6)
    big = [torch.zeros((1, 14, 2 * h, 2 * w)) for h, w in GRIDS]
    double = (2 * SIZE[0], 2 * SIZE[1])
    assert math.isclose(yolo_loss(big, HEADS, empty, no_regions, double, obj_norm="cells")["obj"].item(),
                        cells["obj"].item(), rel_tol=1e-6)
    assert math.isclose(yolo_loss(big, HEADS, empty, no_regions, double)["obj"].item(), 320 * math.log(2),
                        rel_tol=1e-6)
    # The box and class terms keep darknet's sum.
    targets = torch.tensor([[0, 1, 40, 16, 60, 24.0]])
    plain = yolo_loss(raw_outputs(), HEADS, targets, no_regions, SIZE)
    scaled = yolo_loss(raw_outputs(), HEADS, targets, no_regions, SIZE, obj_norm="cells")
    assert scaled["box"].item() == plain["box"].item() and scaled["cls"].item() == plain["cls"].item()
    with pytest.raises(ValueError, match="obj_norm"):
        yolo_loss(raw_outputs(), HEADS, targets, no_regions, SIZE, obj_norm="mean")

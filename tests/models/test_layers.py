"""models/layers.py: the deterministic upsample against F.interpolate, darknet max pooling, conv-bn-act."""
import pytest
import torch
import torch.nn.functional as F

from models.layers import ConvBNAct, MaxPool, Route, Shortcut, Upsample, make_activation

FORMATS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


def _input(dtype=torch.float32, memory_format=torch.contiguous_format, seed=0) -> torch.Tensor:
    """(2, 5, 7, 9): odd sizes and C != H != W so a transposed index would show."""
    x = torch.randn(2, 5, 7, 9, generator=torch.Generator().manual_seed(seed))
    return x.to(dtype).contiguous(memory_format=memory_format)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_forward_bitwise_equals_interpolate(scale, dtype, fmt):
    x = _input(dtype, FORMATS[fmt])
    ours = Upsample(scale)(x)
    ref = F.interpolate(x, scale_factor=scale, mode="nearest")
    assert torch.equal(ours, ref)
    assert ours.dtype == ref.dtype and ours.stride() == ref.stride()  # same memory format as F.interpolate


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_gradient_matches_interpolate(scale, fmt):
    """fp32 gradients agree with F.interpolate's to rtol=1e-5, atol=1e-6: both sum the same s*s values, in a
    possibly different order, so only rounding may differ."""
    grad_out = torch.randn(2, 5, 7 * scale, 9 * scale, generator=torch.Generator().manual_seed(1))
    grads = []
    for module in (Upsample(scale), Upsample(scale, deterministic=False)):
        x = _input(memory_format=FORMATS[fmt]).requires_grad_()
        module(x).backward(grad_out)
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-5, atol=1e-6)


def test_upsample_backward_bitwise_repeatable():
    x = _input().requires_grad_()
    grad_out = torch.randn(2, 5, 14, 18, generator=torch.Generator().manual_seed(2))
    grads = []
    for _ in range(20):
        x.grad = None
        Upsample(2)(x).backward(grad_out)
        grads.append(x.grad.clone())
    assert all(torch.equal(g, grads[0]) for g in grads)


def test_upsample_stock_option_is_interpolate():
    x = _input()
    assert torch.equal(Upsample(2, deterministic=False)(x), F.interpolate(x, scale_factor=2, mode="nearest"))
    assert "deterministic=False" in repr(Upsample(2, deterministic=False))
    with pytest.raises(ValueError, match="positive integer"):
        Upsample(0)


def _darknet_maxpool(x: torch.Tensor, size: int, stride: int, padding: int) -> torch.Tensor:
    """Darknet's loop, transcribed: window at (i*stride - padding//2, ...), out-of-image cells skipped."""
    h_out = (x.shape[-2] + padding - size) // stride + 1
    w_out = (x.shape[-1] + padding - size) // stride + 1
    out = torch.empty(*x.shape[:2], h_out, w_out)
    for i in range(h_out):
        for j in range(w_out):
            top, left = i * stride - padding // 2, j * stride - padding // 2
            window = x[..., max(top, 0):top + size, max(left, 0):left + size]
            out[..., i, j] = window.amax(dim=(-2, -1))
    return out


@pytest.mark.parametrize("size,stride", [(2, 1), (2, 2), (3, 2), (5, 1)])
def test_maxpool_matches_darknet(size, stride):
    """Default padding size-1; yolov3-tiny's (2, 1) keeps 7x9, (2, 2) on odd sizes rounds up like darknet."""
    x = _input()
    out = MaxPool(size, stride, size - 1)(x)
    assert torch.equal(out, _darknet_maxpool(x, size, stride, size - 1))
    if stride == 1:
        assert out.shape == x.shape


def test_maxpool_pads_with_minus_infinity():
    x = -torch.ones(1, 1, 2, 2)  # zero padding would win the max at the border
    assert torch.equal(MaxPool(2, 1, 1)(x), x)


def test_conv_bn_act_stores_bias_only_without_batch_norm():
    with_bn = ConvBNAct(3, 8, 3, 2, 1, batch_norm=True, activation="leaky")
    without = ConvBNAct(3, 8, 1, 1, 0, batch_norm=False, activation="linear")
    assert with_bn.conv.bias is None and with_bn.bn.weight.shape == (8,)
    assert without.conv.bias.shape == (8,) and not hasattr(without, "bn")
    assert with_bn(torch.zeros(1, 3, 8, 8)).shape == (1, 8, 4, 4)
    assert with_bn.act.negative_slope == 0.1  # darknet's leaky slope


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="'swish'.*leaky"):
        make_activation("swish")


def test_route_and_shortcut_read_earlier_outputs():
    a, b = torch.ones(1, 2, 3, 3), torch.full((1, 3, 3, 3), 2.0)
    assert torch.equal(Route((0, 1))([a, b]), torch.cat([a, b], dim=1))
    assert Route((1,))([a, b]) is b
    assert torch.equal(Shortcut(0, "linear")(a, [a]), 2 * a)

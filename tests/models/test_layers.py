"""Resampling and equalised-learning-rate layers against direct formulations."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from epigraf_tools.models.layers import (
    FullyConnectedLayer,
    conv2d_resample,
    setup_filter,
    upfirdn2d,
    upsample2d,
)


def test_fir_filter_is_normalised_binomial():
    f = setup_filter()
    torch.testing.assert_close(f.sum(), torch.tensor(1.0))
    torch.testing.assert_close(f[0, 0], torch.tensor(1 / 64))


def test_upsample_preserves_constant_interior():
    x = torch.full((1, 2, 8, 8), 3.0)
    up = upsample2d(x, setup_filter())
    assert up.shape == (1, 2, 16, 16)
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 3.0))


def test_upsample_equals_the_reference_zero_insertion_pad_and_filter():
    # upsample2d is one transposed convolution; upfirdn2d(up=2) spells the operation out. An asymmetric
    # filter and odd sizes show the two are the same window and the same (unflipped) orientation.
    torch.manual_seed(0)
    for f in (setup_filter(), torch.rand(4, 4)):
        x = torch.randn(2, 3, 5, 7, requires_grad=True)
        ref = upfirdn2d(x, f, up=2, padding=(2, 1, 2, 1), gain=4)
        out = upsample2d(x, f)
        assert out.shape == ref.shape == (2, 3, 10, 14)
        torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)  # rounding order only
        g = torch.randn_like(ref)
        (grad_out,) = torch.autograd.grad(out, x, g)
        (grad_ref,) = torch.autograd.grad(ref, x, g)
        torch.testing.assert_close(grad_out, grad_ref, atol=1e-5, rtol=1e-5)


def test_fir_filtering_pads_like_an_explicit_zero_pad_and_crop():
    """Symmetric padding goes to the convolution itself; others pad (or crop) a copy: the same window."""
    torch.manual_seed(1)
    f = torch.rand(4, 4)
    x = torch.randn(2, 3, 9, 11, requires_grad=True)
    for padding in [(1, 1, 1, 1), (2, 2, 0, 0), (0, 0, 0, 0), (2, 1, 2, 1), (-1, -1, -1, -1), (3, -1, 1, 2)]:
        px0, px1, py0, py1 = padding
        padded = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        padded = padded[
            :, :, max(-py0, 0) : padded.shape[2] - max(-py1, 0), max(-px0, 0) : padded.shape[3] - max(-px1, 0)
        ]
        ref = F.conv2d(padded, (2 * f).flip([0, 1])[None, None].repeat(3, 1, 1, 1), groups=3)
        out = upfirdn2d(x, f, padding=padding, gain=2)
        assert out.shape == ref.shape, padding
        torch.testing.assert_close(out, ref, atol=1e-6, rtol=1e-6)  # the same sums; convolution algorithms may differ
        (grad_out,) = torch.autograd.grad(out.square().sum(), x)
        (grad_ref,) = torch.autograd.grad(ref.square().sum(), x)
        torch.testing.assert_close(grad_out, grad_ref, atol=1e-5, rtol=1e-5)


def test_upsampling_conv_equals_zero_insertion_then_conv_then_filter():
    torch.manual_seed(0)
    x, w = torch.randn(1, 3, 5, 5), torch.randn(4, 3, 3, 3)
    f = setup_filter()
    fast = conv2d_resample(x, w, f, up=2, padding=1)
    zi = torch.zeros(1, 3, 10, 10)
    zi[..., ::2, ::2] = x
    ref = F.conv2d(F.pad(zi, [2, 2, 2, 2]), w.flip([2, 3]))  # transposed conv == flipped conv on zero-inserted
    ref = F.conv2d(F.pad(ref, [1, 1, 1, 1]).reshape(4, 1, 14, 14), (f * 4)[None, None]).reshape(1, 4, 11, 11)
    assert fast.shape == (1, 4, 10, 10)
    torch.testing.assert_close(fast, ref[..., :10, :10], atol=1e-4, rtol=1e-4)


def test_equalised_lr_runtime_weight():
    fc = FullyConnectedLayer(16, 4, lr_multiplier=0.01, activation="lrelu")
    x = torch.randn(2, 16)
    expected = F.leaky_relu(x @ (fc.weight * 0.01 / 4).t() + fc.bias * 0.01, 0.2) * math.sqrt(2)
    torch.testing.assert_close(fc(x), expected)

"""models/backbone.py: the modulated convolution's two paths and demodulation, and the tri-plane backbone's
w count, shapes, resolution check and noise modes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from epigraf_tools.models.backbone import NOISE_MODES, TriPlaneBackbone, modulated_conv2d
from epigraf_tools.models.layers import setup_filter

# fused (one grouped conv) and unfused (scale, conv, scale) round differently; the docstring says ~1e-6
TOL = dict(atol=1e-4, rtol=1e-4)


def _inputs(seed: int = 0, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 4, 8, 8, generator=g)
    weight = torch.randn(5, 4, k, k, generator=g)
    styles = torch.rand(2, 4, generator=g) + 0.5
    return x, weight, styles


@pytest.mark.parametrize("demodulate", [True, False])
@pytest.mark.parametrize("up", [1, 2])
def test_fused_and_unfused_paths_agree(demodulate, up):
    x, weight, styles = _inputs()
    kwargs = dict(up=up, padding=1, resample_filter=setup_filter(), demodulate=demodulate)
    a = modulated_conv2d(x, weight, styles, fused=False, **kwargs)
    b = modulated_conv2d(x, weight, styles, fused=True, **kwargs)
    assert a.shape == (2, 5, 8 * up, 8 * up)
    torch.testing.assert_close(a, b, **TOL)


def test_without_demodulation_and_unit_styles_it_is_a_plain_convolution():
    x, weight, _ = _inputs(1, k=1)
    out = modulated_conv2d(x, weight, torch.ones(2, 4), demodulate=False)
    torch.testing.assert_close(out, F.conv2d(x, weight), **TOL)


def test_demodulation_removes_the_scale_of_styles_and_weights():
    x, weight, styles = _inputs(2)
    base = modulated_conv2d(x, weight, styles, padding=1)
    torch.testing.assert_close(modulated_conv2d(x, 3 * weight, 0.25 * styles, padding=1), base, **TOL)
    # each output channel of the demodulated weights has unit norm, so outputs stay of the order of the inputs
    assert 0.1 < base.std().item() < 10


def test_noise_is_added_after_the_convolution():
    x, weight, styles = _inputs(3)
    noise = torch.randn(2, 1, 8, 8)
    for fused in (False, True):
        with_noise = modulated_conv2d(x, weight, styles, noise=noise, padding=1, fused=fused)
        torch.testing.assert_close(with_noise - modulated_conv2d(x, weight, styles, padding=1, fused=fused),
                                   noise.expand(2, 5, 8, 8), **TOL)  # fmt: skip


@pytest.mark.parametrize("resolution, num_ws", [(4, 2), (16, 6), (32, 8)])
def test_backbone_w_count_and_output_shape(resolution, num_ws):
    torch.manual_seed(0)
    net = TriPlaneBackbone(w_dim=8, out_resolution=resolution, out_channels=6, channel_base=64, channel_max=16).eval()
    assert net.num_ws == num_ws == 2 * (resolution.bit_length() - 1) - 2
    assert net.block_resolutions[0] == 4 and net.block_resolutions[-1] == resolution
    out = net(torch.randn(3, num_ws, 8), noise_mode="const")
    assert out.shape == (3, 6, resolution, resolution) and torch.isfinite(out).all()
    last = getattr(net, f"b{resolution}")
    assert last.conv1.weight.shape[0] == min(64 // resolution, 16)


@pytest.mark.parametrize("resolution", [2, 24, 100])
def test_backbone_refuses_a_resolution_that_is_not_a_power_of_two(resolution):
    with pytest.raises(ValueError, match=f"power of two >= 4, got {resolution}"):
        TriPlaneBackbone(w_dim=8, out_resolution=resolution, out_channels=3)


def _small_backbone() -> TriPlaneBackbone:
    torch.manual_seed(1)
    net = TriPlaneBackbone(w_dim=8, out_resolution=8, out_channels=3, channel_base=32, channel_max=8).eval()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.5)
    return net


def test_noise_modes():
    net, ws = _small_backbone(), torch.randn(1, 4, 8)
    assert NOISE_MODES == ("random", "const", "none")
    torch.testing.assert_close(net(ws, "const"), net(ws, "const"))
    assert not torch.allclose(net(ws, "const"), net(ws, "none"))
    seeded = [net(ws, "random", torch.Generator().manual_seed(7)) for _ in range(2)]
    torch.testing.assert_close(seeded[0], seeded[1])
    assert not torch.allclose(seeded[0], net(ws, "random", torch.Generator().manual_seed(8)))
    with pytest.raises(ValueError, match="noise_mode must be one of .*'loud'"):
        net(ws, "loud")


@pytest.mark.parametrize("act", ["linear", "lrelu"])
def test_bias_act_in_place_gives_the_same_numbers(act):
    from epigraf_tools.models.layers import bias_act

    x = torch.randn(2, 5, 6, 6, generator=torch.Generator().manual_seed(3)) * 300  # some values past the clamp
    b = torch.randn(5)
    expected = bias_act(x, b, act=act, gain=0.7, clamp=256)
    work = x.clone()
    out = bias_act(work, b, act=act, gain=0.7, clamp=256, inplace=True)
    assert out.data_ptr() == work.data_ptr()  # no new tensor
    assert torch.equal(out, expected)


def test_inference_synthesis_finishes_layers_in_place_with_the_same_result():
    """Under no_grad the layers overwrite their conv outputs; with autograd they must not (and both agree)."""
    net = TriPlaneBackbone(w_dim=8, out_resolution=16, out_channels=6, channel_base=64, channel_max=16).eval()
    ws = torch.randn(1, net.num_ws, 8, generator=torch.Generator().manual_seed(0))
    for p in net.parameters():
        p.requires_grad_(True)
    with_graph = net(ws, noise_mode="const")
    with torch.no_grad():
        without = net(ws, noise_mode="const")
    assert torch.equal(with_graph.detach(), without)
    with_graph.square().sum().backward()  # in-place ops on saved tensors would make this raise
    assert net.b16.conv1.weight.grad is not None

"""models/eg3d/fast_field.py: the prepared EG3D field equals ``EG3DGenerator.sample_points``.

Tolerance 1e-5 (float32 sums of 12 taps in another order); points partly outside the planes check
the zero padding and the align_corners=False texel mapping.
"""

from __future__ import annotations

import torch

from epigraf_tools.models.eg3d import EG3DConfig, EG3DGenerator
from epigraf_tools.models.eg3d.renderer import EG3DDraws


def _random_generator() -> EG3DGenerator:
    torch.manual_seed(0)
    G = EG3DGenerator(EG3DConfig(z_dim=16, w_dim=16, channel_base=256, channel_max=16)).eval()
    with torch.no_grad():
        for p in G.decoder.parameters():
            p.normal_()
    return G


def test_fast_eg3d_field_matches_sample_points():
    G = _random_generator()
    planes = torch.randn(2, 3, 32, 20, 20)
    points = (torch.rand(2, 700, 3) * 2 - 1) * 0.6 * G.rendering_kwargs["box_warp"]
    with torch.no_grad():
        ref = G.sample_points(planes, points)
    fast = G.inference_field(planes)(points)
    assert fast["rgb"].shape == (2, 700, 32) and fast["sigma"].shape == (2, 700, 1)
    for key in ("rgb", "sigma"):
        torch.testing.assert_close(fast[key], ref[key], atol=1e-5, rtol=1e-5)


def test_fast_render_equals_the_reference_render():
    G = _random_generator()
    G.rendering_kwargs.update(depth_resolution=6, depth_resolution_importance=4)
    planes = torch.randn(1, 3, 32, 16, 16) * 0.3
    cam = torch.eye(4)
    cam[2, 3] = 2.7  # on the z axis, looking along -z (no rotation needed: camera z is forward)
    cam[:3, :3] = torch.diag(torch.tensor([1.0, -1.0, -1.0]))
    intr = torch.tensor([[4.26, 0, 0.5], [0, 4.26, 0.5], [0, 0, 1]])
    c = torch.cat([cam.reshape(-1), intr.reshape(-1)])[None]
    with torch.no_grad():
        ref = G.render(planes, c, 8, EG3DDraws.deterministic(1, 64, 6))
        fast = G.render(planes, c, 8, EG3DDraws.deterministic(1, 64, 6), fast=True)
    for key in ("feature_image", "image_depth", "weights_sum"):
        torch.testing.assert_close(fast[key], ref[key], atol=1e-5, rtol=1e-5)
    assert ref["weights_sum"].max() > 0.01  # the rays do cross the field

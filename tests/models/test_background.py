"""The NeRF++ inverse-sphere background network."""

from __future__ import annotations

import pytest
import torch

from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.models.background import inverse_sphere_points

from support import TINY_CONFIG


def test_inverse_sphere_points_lie_on_the_ray_at_radius_one_over_inv_depth():
    torch.manual_seed(0)
    origins = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1) * 0.8
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, dtype=torch.float64), dim=-1)
    inv = torch.rand(50, dtype=torch.float64) * 0.9 + 0.05
    pts = inverse_sphere_points(origins, dirs, inv)
    r = 1 / inv
    # forward intersection of the ray with the sphere of radius r
    b = (origins * dirs).sum(-1)
    t = -b + torch.sqrt(b * b - (origins * origins).sum(-1) + r * r)
    expected = origins + t.unsqueeze(-1) * dirs
    torch.testing.assert_close(pts[:, :3], expected / r.unsqueeze(-1), atol=1e-8, rtol=1e-6)
    torch.testing.assert_close(pts[:, 3], inv)


def test_background_parameters_use_official_names_and_shapes():
    G = Generator(GeneratorConfig(**{**TINY_CONFIG, "bg_model": "sphere"}))
    sd = G.state_dict()
    assert sd["synthesis.bg_model.blocks.0.scalar_enc.fourier_encoder.fourier_coefs"].shape == (6,)
    assert sd["synthesis.bg_model.blocks.0.conv1.weight"].shape == (128, 48)
    assert sd["synthesis.bg_model.blocks.1.to_out.weight"].shape == (4, 128)
    assert G.num_ws == G.config.num_ws == GeneratorConfig(**TINY_CONFIG).num_ws + 4


def test_background_shows_only_where_the_foreground_is_transparent():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig(**{**TINY_CONFIG, "bg_model": "sphere"})).eval()
    ws = G.mapping(torch.randn(1, G.z_dim), None)
    angles = torch.tensor([[0.0, 1.57, 0.0]])
    with torch.no_grad():
        planes = G.planes(ws)
        bg_ws = G.synthesis.background_ws(ws)
        G.synthesis.tri_plane_mlp.model[-1].bias[-1] = -100.0  # empty foreground
        G.synthesis.tri_plane_mlp.model[-1].weight[-1] = 0.0
        empty = G.render_planes(planes, angles, bg_ws=bg_ws, deterministic=True)
        G.synthesis.tri_plane_mlp.model[-1].bias[-1] = 100.0  # opaque foreground
        opaque = G.render_planes(planes, angles, bg_ws=bg_ws, deterministic=True)
        G.synthesis.bg_model.blocks[1].to_out.bias += 5.0
        opaque_other_bg = G.render_planes(planes, angles, bg_ws=bg_ws, deterministic=True)
        G.synthesis.tri_plane_mlp.model[-1].bias[-1] = -100.0
        empty_other_bg = G.render_planes(planes, angles, bg_ws=bg_ws, deterministic=True)
    torch.testing.assert_close(opaque["image"], opaque_other_bg["image"])
    assert (empty["image"] - empty_other_bg["image"]).abs().max() > 1e-3
    assert opaque["alpha"].min() > 0.999 and empty["alpha"].max() < 1e-6


def test_rays_that_miss_the_unit_sphere_get_finite_points():
    origins = torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 0.5]])
    dirs = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0, -0.1], [0.3, 0.2, -1.0]]), dim=-1)
    pts = inverse_sphere_points(origins, dirs, torch.tensor([0.5, 0.5]))
    assert torch.isfinite(pts).all()
    assert torch.allclose(pts[:, :3].norm(dim=-1), torch.ones(2), atol=1e-5)


def test_sphere_background_needs_cameras_inside_the_unit_sphere():
    from epigraf_tools.models.config import ConfigError

    with pytest.raises(ConfigError, match="'radius'.*must be <= 1 with bg_model 'sphere'"):
        GeneratorConfig(bg_model="sphere", radius=2.0)
    assert GeneratorConfig(radius=2.0).bg_model is None  # without the background any distance works

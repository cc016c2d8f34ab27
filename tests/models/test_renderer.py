"""Compositing and sampling against closed-form cases."""

from __future__ import annotations

import math

import torch

from epigraf_tools.models.renderer import RayDraws, RenderOptions, composite, render_rays, sample_pdf, stratify


def test_composite_single_opaque_sample_and_white_background():
    z = torch.tensor([0.9, 1.0, 1.1]).reshape(1, 1, 3, 1)
    raw = torch.zeros(1, 1, 3, 4)
    raw[..., 1, :3] = torch.tensor([0.5, -0.5, 0.25])
    raw[..., 1, 3] = 1e4  # opaque at z=1.0
    raw[..., 0, 3] = -1e4  # empty before it
    out = composite(raw, z, RenderOptions(), white_back=True)
    torch.testing.assert_close(out["rgb"][0, 0], torch.tensor([0.5, -0.5, 0.25]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["depth"][0, 0], torch.tensor([1.0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["alpha"][0, 0], torch.tensor([1.0]), atol=1e-5, rtol=0)


def test_composite_uniform_medium_matches_beer_lambert():
    n, sigma_raw = 64, 0.0
    z = torch.linspace(0, 1, n).reshape(1, 1, n, 1)
    raw = torch.full((1, 1, n, 4), sigma_raw)
    opts = RenderOptions(use_inf_depth=False)
    out = composite(raw, z, opts)
    sigma = math.log1p(math.exp(sigma_raw))  # softplus
    total_len = 1.0 + 1e-3  # the last delta is 1e-3 with a background model
    assert abs(out["alpha"].item() - (1 - math.exp(-sigma * total_len))) < 1e-4


def test_stratify_keeps_samples_inside_their_bins():
    z = torch.linspace(1, 2, 5).reshape(1, 1, 5, 1)
    lo = stratify(z, torch.zeros_like(z))
    hi = stratify(z, torch.ones_like(z))
    assert lo[0, 0, 0, 0] == 1 and hi[0, 0, -1, 0] == 2
    assert torch.all(lo[..., 1:, :] >= 1.125 - 1e-6) and torch.all(hi[..., :-1, :] <= 1.875 + 1e-6)


def test_sample_pdf_concentrates_on_heavy_bin():
    bins = torch.linspace(0, 1, 11).unsqueeze(0)
    weights = torch.zeros(1, 10)
    weights[0, 3] = 1.0
    s = sample_pdf(bins, weights, 200, torch.rand(1, 200, generator=torch.Generator().manual_seed(0)))
    frac = ((s >= 0.3) & (s <= 0.4)).float().mean().item()
    assert frac > 0.95


def test_render_rays_sees_a_sphere_at_the_right_depth():
    def field(points):  # opaque sphere of radius 0.1 at the origin, colour = +x coordinate sign
        inside = points.norm(dim=-1, keepdim=True) < 0.1
        return torch.cat([torch.ones_like(points), torch.where(inside, 5000.0, -50.0)], dim=-1)

    origins = torch.tensor([[[1.0, 0.0, 0.0], [1.0, 0.5, 0.0]]])
    dirs = torch.tensor([[[-1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]]])
    opts = RenderOptions(num_steps=64, ray_start=0.5, ray_end=1.5)
    out = render_rays(field, origins, dirs, opts, RayDraws(None, None))
    assert abs(out["depth"][0, 0].item() - 0.9) < 0.02
    assert out["alpha"][0, 0].item() > 0.99 and out["alpha"][0, 1].item() < 1e-6

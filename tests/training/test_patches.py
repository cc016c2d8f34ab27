"""Patch sampling (distribution, annealing, grouping) and real/fake patch alignment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epigraf_tools.training.patches import PatchSampler, extract_patches, linear_schedule

from support import make_tiny_generator


def test_linear_schedule_matches_formula():
    assert linear_schedule(-5, 0.001, 0.8, 10000) == 0.001
    assert linear_schedule(0, 0.001, 0.8, 10000) == 0.001
    assert linear_schedule(2500, 0.001, 0.8, 10000) == pytest.approx(0.001 + 0.799 * 0.25)
    assert linear_schedule(10000, 0.001, 0.8, 10000) == 0.8
    assert linear_schedule(1e9, 0.001, 0.8, 10000) == 0.8


def test_beta_annealing_follows_the_official_schedule():
    s = PatchSampler(resolution=64, image_resolution=512)
    assert s.min_scale == 0.125 and s.beta == pytest.approx(0.001)
    for kimg in (0, 1234.5, 5000, 9999, 20000):
        s.update(kimg)
        assert s.beta == pytest.approx(0.001 + 0.799 * min(kimg, 10000) / 10000)


def test_uniform_anneals_min_scale():
    s = PatchSampler(resolution=64, image_resolution=256, distribution="uniform", anneal_kimg=100)
    assert s.current_min_scale == 1.0
    s.update(50)
    assert s.current_min_scale == pytest.approx(1 - 0.75 * 0.5)
    s.update(1000)
    assert s.current_min_scale == pytest.approx(0.25)


def test_scale_distribution_matches_beta_moments():
    s = PatchSampler(resolution=64, image_resolution=512, group_size=1)
    s.update(10000)  # beta = 0.8
    out = s.sample(40000, np.random.RandomState(0), torch.Generator().manual_seed(0))
    scales = out["scales"][:, 0].double().numpy()
    u = (scales - 0.125) / 0.875  # back to Beta(1, 0.8)
    a, b = 1.0, 0.8
    assert u.mean() == pytest.approx(a / (a + b), abs=0.005)
    assert u.var() == pytest.approx(a * b / ((a + b) ** 2 * (a + b + 1)), abs=0.005)
    assert scales.min() >= 0.125 and scales.max() <= 1.0
    # CDF of Beta(1, b) is 1 - (1 - u)^b: compare at a few points
    for q in (0.1, 0.5, 0.9):
        assert (u <= q).mean() == pytest.approx(1 - (1 - q) ** b, abs=0.01)


def test_start_of_training_is_almost_whole_images():
    s = PatchSampler(resolution=64, image_resolution=512, group_size=1)
    scales = s.sample(2000, np.random.RandomState(1), torch.Generator().manual_seed(1))["scales"][:, 0]
    assert (scales > 0.99).float().mean() > 0.95


def test_offsets_groups_and_square_patches():
    s = PatchSampler(resolution=16, image_resolution=64, group_size=4)
    s.update(1e9)
    out = s.sample(12, np.random.RandomState(2), torch.Generator().manual_seed(2))
    sc, off = out["scales"], out["offsets"]
    assert sc.shape == (12, 2) and off.shape == (12, 2)
    assert torch.equal(sc[:, 0], sc[:, 1])
    assert (off >= 0).all() and (off <= 1 - sc + 1e-7).all()
    for g in range(3):  # consecutive groups of 4 share one patch
        assert (sc[4 * g : 4 * g + 4] == sc[4 * g]).all() and (off[4 * g : 4 * g + 4] == off[4 * g]).all()
    assert len({float(v) for v in sc[:, 0]}) == 3
    small = s.sample(2, np.random.RandomState(0), torch.Generator())  # batch smaller than a group
    assert small["scales"].shape == (2, 2)


def test_offsets_fill_the_free_space_uniformly():
    s = PatchSampler(resolution=16, image_resolution=64, distribution="uniform", group_size=1, anneal_kimg=0)
    s.update(1.0)
    out = s.sample(20000, np.random.RandomState(3), torch.Generator().manual_seed(3))
    frac = out["offsets"] / (1 - out["scales"])
    assert frac.mean().item() == pytest.approx(0.5, abs=0.01)
    assert frac.min() >= 0 and frac.max() <= 1


def test_whole_image_patch_is_the_image():
    img = torch.randn(2, 3, 8, 8)
    patch = {"scales": torch.ones(2, 2), "offsets": torch.zeros(2, 2)}
    assert torch.allclose(extract_patches(img, patch, 8), img, atol=1e-5)


def test_offset_y_counts_from_the_bottom():
    img = torch.zeros(1, 1, 9, 9)
    img[0, 0, 8, 0] = 1.0  # bottom-left pixel
    patch = {"scales": torch.full((1, 2), 0.5), "offsets": torch.zeros(1, 2)}
    out = extract_patches(img, patch, 5)
    assert out[0, 0, 4, 0] == pytest.approx(1.0)  # the patch at offset (0, 0) is the bottom-left quarter


@pytest.mark.parametrize("scale_px,offset_px", [(16, (0, 0)), (16, (8, 4)), (32, (0, 0))])
def test_real_patches_align_with_rendered_patches(scale_px, offset_px):
    """A patch rendered with patch rays equals the same patch cut from the rendered full image."""
    full_res, patch_res = 33, 17  # pixel pitch 1/32; a 16-pixel-wide patch lands on pixel centres
    G = make_tiny_generator(0)
    planes = G.planes(G.mapping(torch.randn(1, G.z_dim), None))
    angles = torch.tensor([[0.2, 1.4, 0.0]])
    scale = scale_px / (full_res - 1)
    patch = {
        "scales": torch.full((1, 2), scale),
        "offsets": torch.tensor([[offset_px[0] / (full_res - 1), offset_px[1] / (full_res - 1)]]),
    }
    with torch.no_grad():
        full = G.render_planes(planes, angles, resolution=full_res, deterministic=True)["image"]
        rendered = G.render_planes(planes, angles, resolution=patch_res, patch_params=patch, deterministic=True)[
            "image"
        ]
    cut = extract_patches(full, patch, patch_res)
    assert rendered.abs().max() > 1e-2  # there is something to compare
    assert torch.allclose(cut, rendered, atol=2e-5), (cut - rendered).abs().max()


def test_extract_matches_manual_bilinear_between_pixels():
    img = torch.arange(16.0).reshape(1, 1, 4, 4)  # value = 4 * row + col
    patch = {"scales": torch.full((1, 2), 0.5), "offsets": torch.tensor([[0.25, 0.25]])}
    out = extract_patches(img, patch, 2)
    # x' = (x + 1) 0.5 - 1 + 0.5 in {-0.5, 0.5} -> columns 0.75 and 2.25; rows likewise (y up)
    expected = torch.tensor([[0.75 * 4 + 0.75, 0.75 * 4 + 2.25], [2.25 * 4 + 0.75, 2.25 * 4 + 2.25]])
    assert torch.allclose(out[0, 0], expected, atol=1e-5)

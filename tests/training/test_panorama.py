"""The synthetic dataset's sky map at infinity: a function of direction only, mirror-symmetric, in range."""

from __future__ import annotations

import math

import torch

from epigraf_tools.training.panorama import hsv_to_rgb, sky_colour


def test_colour_depends_on_the_direction_only():
    d = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=-1)
    assert torch.allclose(sky_colour(d), sky_colour(d * 3.7), atol=1e-9)  # any length: points at infinity
    rgb = sky_colour(d)
    assert rgb.shape == (500, 3) and rgb.min() >= 0 and rgb.max() <= 1


def test_mirror_symmetric_about_the_xy_plane():
    """x-flip augmentation negates yaw, i.e. reflects z: a mirrored view must see the same sky."""
    d = torch.nn.functional.normalize(torch.randn(500, 3, dtype=torch.float64), dim=-1)
    mirrored = d * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)
    assert torch.allclose(sky_colour(d), sky_colour(mirrored), atol=1e-12)


def test_a_thirty_degree_view_sees_texture_and_different_yaws_see_different_colours():
    # directions within 15 degrees of +x (where the camera at yaw pi looks) and of -x
    ang = torch.linspace(-math.radians(15), math.radians(15), 64, dtype=torch.float64)
    a, e = torch.meshgrid(ang, ang, indexing="ij")
    towards_x = torch.stack([torch.cos(e) * torch.cos(a), torch.sin(e), torch.cos(e) * torch.sin(a)], dim=-1)
    front, back = sky_colour(towards_x), sky_colour(-towards_x)
    assert front.reshape(-1, 3).std(dim=0).max() > 0.05  # edges in view, not a flat colour
    assert (front.mean(dim=(0, 1)) - back.mean(dim=(0, 1))).abs().max() > 0.1


def test_hsv_primaries():
    h = torch.tensor([0.0, 1 / 3, 2 / 3, 0.5])
    rgb = hsv_to_rgb(h, torch.ones(4), torch.ones(4))
    expected = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [0, 1, 1]])
    assert torch.allclose(rgb, expected, atol=1e-6)
    grey = hsv_to_rgb(torch.tensor([0.3]), torch.zeros(1), torch.tensor([0.4]))
    assert torch.allclose(grey, torch.full((1, 3), 0.4))

"""A procedural sky map: a colour for every world direction, as if painted on a sphere at infinity.

The synthetic dataset's ``textured`` background (``epigraf dataset synth --background textured``)
looks this map up with each pixel's ray direction. Because it depends on the direction only, never
on where the camera is, every view of the dataset sees the same consistent, parallax-free panorama:
exactly what a background at infinity is, and what EpiGRAF's inverse-sphere background network
(``bg_model: sphere``) can represent while the foreground tri-plane stays empty around the object.

The pattern is chosen to be learnable and easy to recognise in small images: the hue changes
around the horizon (so each yaw sees different colours), a checkerboard of 15-degree cells in
azimuth and 10-degree bands in elevation gives edges that a 30-degree view always contains, and
the brightness falls from the zenith to the ground as in a sky. The map is mirror-symmetric about
the world's x-y plane (it depends on |azimuth|): training's x-flip augmentation mirrors an image and
negates its yaw, which reflects z, so a mirrored view still sees the same sky.
"""

from __future__ import annotations

import math

import torch

AZIMUTH_CELL = math.radians(15.0)
ELEVATION_CELL = math.radians(10.0)


def sky_colour(directions: torch.Tensor) -> torch.Tensor:
    """World ray directions [..., 3] (any length) -> RGB in [0, 1] [..., 3]."""
    d = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    azimuth = torch.atan2(d[..., 2], d[..., 0]).abs()  # from +x around +y, [0, pi]: symmetric in z
    elevation = torch.asin(d[..., 1].clamp(-1.0, 1.0))
    checker = (torch.floor(azimuth / AZIMUTH_CELL) + torch.floor(elevation / ELEVATION_CELL)).remainder(2)
    hue = 0.8 * azimuth / math.pi
    value = (0.5 + 0.3 * checker) * (0.8 + 0.2 * torch.sin(elevation))
    return hsv_to_rgb(hue, torch.full_like(hue, 0.5), value)


def hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Element-wise HSV (each [...], in [0, 1]) -> RGB [..., 3] (the smooth formulation, no sector branches)."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=-1)
    ramp = torch.minimum(k, 4 - k).clamp(0.0, 1.0)
    return v.unsqueeze(-1) - (v * s).unsqueeze(-1) * ramp

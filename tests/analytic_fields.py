"""Tiny generators whose tri-plane field is known in closed form (for geometry tests).

The density is written into the planes and MLP so that raw density = 10 * (R^2 - |p - c|^2): a
sphere of radius R around c at level 0. The squared distance splits over the three planes,
(x^2 + y^2)/2 + (x^2 + z^2)/2 + (y^2 + z^2)/2 = |p|^2, and the first layer's bias keeps the leaky
ReLU in its linear part, so the MLP passes it through exactly. Colours are linear in position:
rgb raw = COLOR_GAIN * (p - c), clipped to [-1, 1] like images.
"""

from __future__ import annotations

import math

import torch

from epigraf_tools.models import Generator, GeneratorConfig

COLOR_GAIN = 5.0
DENSITY_GAIN = 10.0
_OFFSET = 10.0  # keeps every hidden pre-activation positive (the leaky ReLU stays linear)


def sphere_generator(
    radius: float = 0.1,
    center: tuple[float, float, float] = (0.0, 0.0, 0.0),
    texels: int = 64,
    cube_scale: float = 0.2,
) -> tuple[Generator, torch.Tensor]:
    """-> (G, planes [1, 3, C, R, R]) with the analytic sphere field described above."""
    cfg = GeneratorConfig(
        img_resolution=32, triplane_res=16, channel_base=256, channel_max=32, feat_dim=8, mlp_hid_dim=16,
        z_dim=32, w_dim=32, num_ray_steps=8, cube_scale=cube_scale,
    )  # fmt: skip
    G = Generator(cfg).eval()
    u = torch.linspace(-1, 1, texels, dtype=torch.float64) * cube_scale  # world coordinate of each texel
    cx, cy, cz = center
    # plane[c, row, col]: row = second coordinate of the pair, col = first.
    W, H = torch.meshgrid(u, u, indexing="xy")  # W varies along columns, H along rows
    planes = torch.zeros(1, 3, cfg.feat_dim, texels, texels, dtype=torch.float64)
    pairs = ((cx, cy), (cx, cz), (cy, cz))  # centres of the (width, height) coordinates of planes 0, 1, 2
    r2 = radius**2
    for p, (c0, c1) in enumerate(pairs):
        planes[0, p, 0] = r2 / 3 - ((W - c0) ** 2 + (H - c1) ** 2) / 2  # mean over planes = (R^2 - |p-c|^2) / 3
    # colour channels 1..3 carry x, y, z - c (1.5 x per plane holding that axis, mean = x)
    planes[0, 0, 1] = 1.5 * (W - cx)
    planes[0, 1, 1] = 1.5 * (W - cx)
    planes[0, 0, 2] = 1.5 * (H - cy)
    planes[0, 2, 2] = 1.5 * (W - cy)
    planes[0, 1, 3] = 1.5 * (H - cz)
    planes[0, 2, 3] = 1.5 * (H - cz)

    fc0, fc1 = G.synthesis.tri_plane_mlp.model
    with torch.no_grad():
        w0 = torch.zeros_like(fc0.weight)
        b0 = torch.zeros_like(fc0.bias)
        w0[0, 0] = 3.0 * DENSITY_GAIN  # hidden 0 = 10 * (R^2 - |p-c|^2) + offset
        for ch in (1, 2, 3):
            w0[ch, ch] = COLOR_GAIN  # hidden ch = 5 * (axis - c) + offset
        b0[:4] = _OFFSET
        fc0.weight.copy_(w0 / fc0.weight_gain)
        fc0.bias.copy_(b0 / fc0.bias_gain)
        w1 = torch.zeros_like(fc1.weight)
        b1 = torch.zeros_like(fc1.bias)
        inv = 1.0 / math.sqrt(2.0)  # undo the leaky ReLU gain
        w1[3, 0] = inv  # density
        for ch in (0, 1, 2):
            w1[ch, ch + 1] = inv  # rgb
        b1[:] = -_OFFSET
        fc1.weight.copy_(w1 / fc1.weight_gain)
        fc1.bias.copy_(b1 / fc1.bias_gain)
    return G, planes.float()


def sphere_density(points: torch.Tensor, radius: float, center=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """The analytic raw density at world points [..., 3]."""
    c = torch.tensor(center, dtype=points.dtype)
    return DENSITY_GAIN * (radius**2 - ((points - c) ** 2).sum(-1))

"""An opaque, position-coloured sphere written into a tiny generator's tri-planes and MLP.

Raw density = GAIN * (R^2 - |p|^2) (opaque within ~1e-3 of the surface) and raw colour = 5 p, so an
image tells which world axis points where: red grows with +x, green with +y, blue with +z. The
squared radius splits over the planes as (x^2 + y^2 + x^2 + z^2 + y^2 + z^2) / 2 = |p|^2; a large
bias keeps every hidden unit in the linear part of the leaky ReLU.
"""

from __future__ import annotations

import torch

from epigraf_tools.models import Generator

from support import make_tiny_generator

GAIN = 5e4
COLOUR = 5.0
OFFSET = 1.0


def opaque_sphere(radius: float = 0.1, texels: int = 64) -> tuple[Generator, torch.Tensor]:
    """-> (G, planes [1, 3, 8, texels, texels]): a sphere of ``radius`` (world units) at the origin."""
    G = make_tiny_generator()
    cube = G.config.cube_scale
    u = torch.linspace(-1, 1, texels, dtype=torch.float64) * cube
    W, H = torch.meshgrid(u, u, indexing="xy")  # W: first coordinate (columns), H: second (rows)
    planes = torch.zeros(1, 3, G.config.feat_dim, texels, texels, dtype=torch.float64)
    for p in range(3):
        planes[0, p, 0] = radius**2 / 3 - (W**2 + H**2) / 2  # mean over the planes: (R^2 - |p|^2) / 3
    planes[0, 0, 1], planes[0, 1, 1] = 1.5 * W, 1.5 * W  # x on planes (x, y) and (x, z): mean x
    planes[0, 0, 2], planes[0, 2, 2] = 1.5 * H, 1.5 * W  # y on planes (x, y) and (y, z)
    planes[0, 1, 3], planes[0, 2, 3] = 1.5 * H, 1.5 * H  # z on planes (x, z) and (y, z)
    fc0, fc1 = G.synthesis.tri_plane_mlp.model
    with torch.no_grad():
        w0, b0 = torch.zeros_like(fc0.weight), torch.zeros_like(fc0.bias)
        w0[0, 0] = 3.0
        for ch in (1, 2, 3):
            w0[ch, ch] = 1.0
        b0[:4] = OFFSET
        fc0.weight.copy_(w0 / fc0.weight_gain)
        fc0.bias.copy_(b0 / fc0.bias_gain)
        w1, b1 = torch.zeros_like(fc1.weight), torch.zeros_like(fc1.bias)
        gain = 2**-0.5  # undo the hidden layer's sqrt(2)
        for ch in (1, 2, 3):
            w1[ch - 1, ch] = COLOUR * gain
            b1[ch - 1] = -COLOUR * OFFSET
        w1[3, 0] = GAIN * gain
        b1[3] = -GAIN * OFFSET
        fc1.weight.copy_(w1 / fc1.weight_gain)
        fc1.bias.copy_(b1 / fc1.bias_gain)
    return G, planes.float()

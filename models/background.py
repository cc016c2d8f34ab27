"""Optional NeRF++ inverse-sphere background (``bg_model: sphere`` in the official configs).

Outside the unit sphere, a point on a ray is described by the unit-sphere point it projects to and
its inverse distance 1/r in [0, 1]. A small style-modulated MLP (an INR-GAN: two 'skip' blocks of
modulated linear layers, 128 wide, Fourier features of the 4-D point) turns those into colour and
density, which are composited over 8 inverse depths and added behind the foreground, weighted by
the foreground's remaining transmittance. None of the released EpiGRAF checkpoints uses it.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .initial_weights import normal_weights
from .layers import FullyConnectedLayer, ScalarEncoder1d, bias_act
from .renderer import RenderOptions, composite


class ModulatedLinear(nn.Module):
    """Style-modulated (and optionally demodulated) linear layer on point features [B, I, N]."""

    def __init__(self, in_features: int, out_features: int, w_dim: int, demodulate: bool = True) -> None:
        super().__init__()
        self.demodulate = demodulate
        self.affine = FullyConnectedLayer(w_dim, in_features, bias_init=1)
        self.weight = nn.Parameter(normal_weights(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features))
        self.style_gain = 1.0 if demodulate else 1 / math.sqrt(in_features)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.style_gain  # [B, I]
        out = torch.einsum("bin,oi->bon", x * styles.unsqueeze(2), self.weight)
        if self.demodulate:
            dcoefs = ((self.weight.unsqueeze(0) * styles.unsqueeze(1)).square().sum(dim=2) + 1e-8).rsqrt()
            out = out * dcoefs.unsqueeze(2)
        return bias_act(out, self.bias, act="lrelu" if self.demodulate else "linear")


class BackgroundBlock(nn.Module):
    """One INR block: (Fourier features | conv0) -> conv1 -> to_out (skip connection to the output)."""

    def __init__(self, in_features: int, width: int, w_dim: int, out_channels: int, posenc_period: float) -> None:
        super().__init__()
        self.first = in_features == 0
        if self.first:
            self.scalar_enc = ScalarEncoder1d(4, x_multiplier=posenc_period)
            conv1_in = self.scalar_enc.out_dim
            self.num_layers = 1
        else:
            self.conv0 = ModulatedLinear(in_features, width, w_dim)
            conv1_in = width
            self.num_layers = 2
        self.conv1 = ModulatedLinear(conv1_in, width, w_dim)
        self.to_out = ModulatedLinear(width, out_channels, w_dim, demodulate=False)

    def forward(self, x: torch.Tensor, ws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.first:
            b, _, n = x.shape
            x = self.scalar_enc(x.permute(0, 2, 1).reshape(b * n, 4)).reshape(b, n, -1).permute(0, 2, 1)
            x = self.conv1(x, ws[:, 0])
        else:
            x = self.conv0(x, ws[:, 0])
            x = self.conv1(x, ws[:, 1])
        return x, self.to_out(x, ws[:, self.num_layers])


class SphereBackground(nn.Module):
    """ws [B, 4, w_dim] + rays -> background colour [B, R, C] (official name: ``synthesis.bg_model``)."""

    def __init__(
        self,
        w_dim: int,
        out_channels: int = 4,
        num_blocks: int = 2,
        channel_base: int = 32768,
        channel_max: int = 128,
        posenc_period: float = 64.0,
        num_steps: int = 8,
        start: float = 1.0,
    ) -> None:
        super().__init__()
        widths = [min(channel_base // 2 ** (i + 2), channel_max) for i in range(num_blocks)]
        self.blocks = nn.ModuleList(
            BackgroundBlock(widths[i - 1] if i > 0 else 0, widths[i], w_dim, out_channels, posenc_period)
            for i in range(num_blocks)
        )
        self.num_ws = sum(block.num_layers for block in self.blocks) + 1
        self.num_steps = num_steps
        self.start = start

    def field(self, points: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """4-D points [B, N, 4] -> raw (colour, density) [B, N, C+1]."""
        x, out, w_idx = points.permute(0, 2, 1), None, 0
        for block in self.blocks:
            x, y = block(x, ws[:, w_idx : w_idx + block.num_layers + 1])
            out = y if out is None else out + y
            w_idx += block.num_layers
        return out.permute(0, 2, 1)

    def forward(
        self,
        ws: torch.Tensor,
        origins: torch.Tensor,
        directions: torch.Tensor,
        opts: RenderOptions,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Composite the background along rays [B, R, 3]; jitter the inverse depths only in training."""
        b, r, _ = origins.shape
        inv_depth = torch.linspace(self.start, 0.0, self.num_steps, device=origins.device, dtype=origins.dtype)
        inv_depth = inv_depth.expand(b, r, -1)
        if self.training:
            mids = 0.5 * (inv_depth[..., 1:] + inv_depth[..., :-1])
            high = torch.cat([mids, inv_depth[..., -1:]], dim=-1)
            low = torch.cat([inv_depth[..., :1], mids], dim=-1)
            inv_depth = low + (high - low) * torch.rand(low.shape, device=low.device, generator=generator)
        dirs = directions / directions.norm(dim=-1, keepdim=True)
        pts = inverse_sphere_points(
            origins.unsqueeze(2).expand(-1, -1, self.num_steps, -1),
            dirs.unsqueeze(2).expand(-1, -1, self.num_steps, -1),
            inv_depth,
        )
        raw = self.field(pts.reshape(b, -1, 4), ws).reshape(b, r, self.num_steps, -1)
        bg_opts = RenderOptions(clamp_mode=opts.clamp_mode, use_inf_depth=True)
        return composite(raw, -inv_depth.unsqueeze(-1), bg_opts, white_back=opts.white_back)["rgb"]


def inverse_sphere_points(origins: torch.Tensor, dirs: torch.Tensor, inv_depth: torch.Tensor) -> torch.Tensor:
    """NeRF++ parametrisation of points outside the unit sphere: [..., 3] rays + [...] 1/r -> [..., 4].

    The ray's exit point from the unit sphere is rotated towards the ray's closest point to the
    origin by the angle at which a sphere of radius r = 1/inv_depth is met; the result is that
    point's direction (on the unit sphere) with 1/r appended. Cameras should lie inside the sphere.
    """
    d1 = -(dirs * origins).sum(-1) / (dirs * dirs).sum(-1)
    p_mid = origins + d1.unsqueeze(-1) * dirs
    # A ray that misses the unit sphere (only possible from a camera outside it, e.g. a toolkit view
    # from further away) is given the sphere's tangent point instead of NaN; rays that meet the
    # sphere, all of them in training, are unchanged.
    p_mid_norm = p_mid.norm(dim=-1).clamp_max(1.0)
    ray_d_cos = 1.0 / dirs.norm(dim=-1)
    d2 = torch.sqrt(1.0 - p_mid_norm * p_mid_norm) * ray_d_cos
    p_sphere = origins + (d1 + d2).unsqueeze(-1) * dirs
    axis = torch.cross(origins, p_sphere, dim=-1)
    axis = axis / axis.norm(dim=-1, keepdim=True)
    angle = (torch.asin(p_mid_norm) - torch.asin(p_mid_norm * inv_depth)).unsqueeze(-1)
    rotated = (
        p_sphere * torch.cos(angle)
        + torch.cross(axis, p_sphere, dim=-1) * torch.sin(angle)
        + axis * (axis * p_sphere).sum(-1, keepdim=True) * (1.0 - torch.cos(angle))
    )
    rotated = rotated / rotated.norm(dim=-1, keepdim=True)
    return torch.cat([rotated, inv_depth.unsqueeze(-1)], dim=-1)

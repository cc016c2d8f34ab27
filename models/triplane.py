"""The tri-plane field: three axis-aligned feature planes and a small MLP (the tri-plane MLP).

``TriPlaneSynthesis`` puts the pieces together: the StyleGAN2 backbone (backbone.py) draws the
planes from ws, the tri-plane MLP decodes them, and an optional background network
(background.py) fills what the planes leave empty.

A world point p is divided by ``cube_scale`` and looked up bilinearly (align_corners=True, zeros
outside) in plane 0 at (x, y), plane 1 at (x, z) and plane 2 at (y, z), the first coordinate of
each pair indexing the plane's width. The three features are averaged and decoded into raw RGB
(already in the [-1, 1] image range) and a raw density. The field knows nothing about rays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from .backbone import TriPlaneBackbone
from .background import SphereBackground
from .layers import ACTIVATION_GAINS, FullyConnectedLayer

if TYPE_CHECKING:
    from .config import GeneratorConfig

# (width coordinate, height coordinate) for planes 0, 1, 2.
PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2))


@dataclass(frozen=True)
class FoldedLayer:
    """One MLP layer as plain tensors: y = act(x @ weight.T + bias), with every constant gain folded in.

    ``weight`` [out, in] already includes the equalised-learning-rate gain and the gain carried in
    from before (the 1/3 plane average for the first layer, the previous activation's gain for the
    others); ``bias`` [out] (or None) includes its lr gain. ``activation`` is applied WITHOUT its
    gain: that gain moves into the next layer (leaky ReLU is positively homogeneous), or into
    ``FoldedMLP.out_gain`` after the last.
    """

    weight: torch.Tensor
    bias: torch.Tensor | None
    activation: str


@dataclass(frozen=True)
class FoldedMLP:
    """The tri-plane MLP, folded for inference on the SUM of the three plane features."""

    layers: list[FoldedLayer]
    out_gain: float  # 1 for the usual linear output layer


class TriPlaneMLP(nn.Module):
    """Mean plane feature [.., C] -> (rgb raw [.., 3], density raw [.., 1]).

    ``model`` is FC(C, hid, lrelu) ... FC(hid, 4, linear), named as in official checkpoints.
    """

    def __init__(self, feat_dim: int = 32, hid_dim: int = 64, n_layers: int = 2, out_dim: int = 4) -> None:
        super().__init__()
        if n_layers < 1:
            raise ValueError("the tri-plane MLP needs at least one layer")
        dims = [feat_dim] + [hid_dim] * (n_layers - 1) + [out_dim]
        layers = [
            FullyConnectedLayer(dims[i], dims[i + 1], activation="lrelu" if i < n_layers - 1 else "linear")
            for i in range(n_layers)
        ]
        self.model = nn.Sequential(*layers)
        self.feat_dim = feat_dim
        self.out_dim = out_dim

    @torch.no_grad()
    def folded(self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> FoldedMLP:
        """The weights with every constant gain folded in (see ``FoldedLayer``): the one folding that
        the fast field (fast_field.py) and the toolkit's separable volumes share.

        Feed it the sum of the three plane features, not their mean. Tracks no gradients; the
        training field uses ``folded_with_grad``.
        """
        return self.folded_with_grad(dtype, device)

    def folded_with_grad(
        self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> FoldedMLP:
        """``folded``, but as differentiable functions of the parameters: the folded tensors are a
        few hundred numbers, so recomputing them per step costs nothing, and gradients reach the
        stored weights exactly as through ``forward``."""
        layers = []
        carry = 1.0 / 3.0  # the plane average
        for layer in self.model:
            if layer.activation not in ACTIVATION_GAINS:
                raise ValueError(f"unsupported activation {layer.activation!r} in the tri-plane MLP")
            weight = layer.weight.to(device=device, dtype=dtype) * (layer.weight_gain * carry)
            bias = None if layer.bias is None else layer.bias.to(device=device, dtype=dtype) * layer.bias_gain
            layers.append(FoldedLayer(weight, bias, layer.activation))
            carry = ACTIVATION_GAINS[layer.activation]
        return FoldedMLP(layers, carry)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """[..., C] -> [..., 4]."""
        shape = features.shape
        out = self.model(features.reshape(-1, shape[-1]))
        return out.reshape(*shape[:-1], self.out_dim)


def sample_planes(planes: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Mean tri-plane feature at normalised coordinates.

    planes: [B, 3, C, R, R]; coords: [B, N, 3] already divided by cube_scale (the cube is [-1, 1]^3).
    Returns [B, N, C].
    """
    b, n_planes, c, h, w = planes.shape
    assert n_planes == 3, f"expected 3 planes, got {n_planes}"
    grids = torch.stack([coords[..., list(axes)] for axes in PLANE_AXES], dim=1)  # [B, 3, N, 2]
    grids = grids.reshape(b * 3, 1, -1, 2).to(planes.dtype)
    feats = F.grid_sample(
        planes.reshape(b * 3, c, h, w), grids, mode="bilinear", padding_mode="zeros", align_corners=True
    )  # [B*3, C, 1, N]
    feats = feats.reshape(b, 3, c, -1).permute(0, 1, 3, 2)  # [B, 3, N, C]
    return feats.mean(dim=1)


def query_field(planes: torch.Tensor, mlp: TriPlaneMLP, points: torch.Tensor, cube_scale: float) -> torch.Tensor:
    """Raw field output at world points: planes [B, 3, C, R, R], points [B, N, 3] -> [B, N, 4]
    (rgb raw, density raw)."""
    return mlp(sample_planes(planes, points / cube_scale))


class TriPlaneSynthesis(nn.Module):
    """ws -> tri-plane [B, 3, C, R, R] and the MLP that decodes it (official name: SynthesisNetwork)."""

    def __init__(self, cfg: GeneratorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tri_plane_decoder = TriPlaneBackbone(
            w_dim=cfg.w_dim,
            out_resolution=cfg.triplane_res,
            out_channels=3 * cfg.feat_dim,
            channel_base=cfg.channel_base,
            channel_max=cfg.channel_max,
            use_noise=cfg.use_noise,
            conv_clamp=cfg.conv_clamp,
        )
        self.tri_plane_mlp = TriPlaneMLP(cfg.feat_dim, cfg.mlp_hid_dim, cfg.mlp_n_layers, cfg.img_channels + 1)
        self.num_ws = self.tri_plane_decoder.num_ws
        self.bg_model: SphereBackground | None = None
        if cfg.bg_model == "sphere":
            self.bg_model = SphereBackground(
                cfg.w_dim,
                out_channels=cfg.img_channels + 1,
                num_blocks=cfg.bg_num_blocks,
                channel_base=cfg.bg_channel_base,
                channel_max=cfg.bg_channel_max,
                posenc_period=cfg.bg_posenc_period,
                num_steps=cfg.bg_num_steps,
                start=cfg.bg_start,
            )
            self.num_ws += self.bg_model.num_ws

    def background_ws(self, ws: torch.Tensor) -> torch.Tensor | None:
        """The ws that drive the background network (None without one)."""
        if self.bg_model is None:
            return None
        start = self.tri_plane_decoder.num_ws
        return ws[:, start : start + self.bg_model.num_ws]

    def planes(
        self, ws: torch.Tensor, noise_mode: str = "const", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """ws [B, num_ws, w_dim] -> tri-plane [B, 3, C, R, R]."""
        raw = self.tri_plane_decoder(ws[:, : self.num_ws], noise_mode=noise_mode, generator=generator)
        b, _, h, w = raw.shape
        return raw.reshape(b, 3, self.cfg.feat_dim, h, w)

    def field(self, planes: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        """Raw (rgb, density) [B, N, 4] at world points [B, N, 3]."""
        return query_field(planes, self.tri_plane_mlp, points, self.cfg.cube_scale)

"""Inference-only evaluators of the EG3D field (tri-plane sampling + OSG decoder), prepared once.

``EG3DGenerator.sample_points`` is the readable reference (``sample_triplane``: grid_sample with
coordinates scaled by 2 / box_warp, align_corners=False, zeros outside; plane 0 read at (x, y),
1 at (x, z), 2 at (z, x); mean; FC -> softplus -> FC). Its first layer is linear in the plane
MEAN, as EpiGRAF's is, so the same folding applies: ``folded_osg_decoder`` gives the decoder as
plain tensors with the 1/3 mean and the equalised-learning-rate gains folded in, which the
separable volume path (``FoldedField.from_eg3d``) and ``FastEG3DField`` share.
"""

from __future__ import annotations

import torch

from ..fast_field import FastTriPlaneField
from ..triplane import FoldedLayer, FoldedMLP


@torch.no_grad()
def folded_osg_decoder(
    decoder, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> FoldedMLP:
    """``OSGDecoder`` -> FoldedMLP for the SUM of the three plane features (hidden act 'softplus').

    Output 0 is the raw density, outputs 1.. the 32 raw features (before the decoder's sigmoid).
    """
    fc0, fc1 = decoder.net[0], decoder.net[2]
    layers = []
    for fc, carry, act in ((fc0, 1.0 / 3.0, "softplus"), (fc1, 1.0, "linear")):
        weight = fc.weight.detach().to(device=device, dtype=dtype) * (fc.weight_gain * carry)
        bias = None if fc.bias is None else fc.bias.detach().to(device=device, dtype=dtype) * fc.bias_gain
        layers.append(FoldedLayer(weight, bias, act))
    return FoldedMLP(layers, 1.0)


# (width axis, height axis) of EG3D's planes 0, 1, 2 in world coordinates (see ``sample_triplane``).
EG3D_PLANE_AXES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (2, 0))


class FastEG3DField(FastTriPlaneField):
    """``EG3DGenerator.sample_points`` for one set of tri-planes, as one 12-tap gather + folded decoder.

    planes [B, 3, 32, H, W]; calling it with world points [B, M, 3] (and ignored directions) gives
    {"rgb": features [B, M, 32] in (-0.001, 1.001), "sigma": raw density [B, M, 1]}, equal to the
    reference up to float32 rounding. grid_sample with align_corners=False reads a world
    coordinate p at texel p * size / box_warp + (size - 1) / 2.
    """

    def __init__(self, planes: torch.Tensor, decoder, box_warp: float) -> None:
        h, w = planes.shape[-2:]
        folded = folded_osg_decoder(decoder, planes.dtype, planes.device)
        self._prepare(planes, EG3D_PLANE_AXES, (w / box_warp, h / box_warp), folded)

    def __call__(self, points: torch.Tensor, directions: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        from .generator import decoder_outputs

        return decoder_outputs(self.raw(points))

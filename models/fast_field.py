"""An inference-only evaluator of the tri-plane field, prepared once per set of tri-planes.

``query_field`` (triplane.py) is the readable reference: sample three planes, average, run the MLP.
At render time the same planes are queried millions of times, so this module pays a few one-off
costs up front and keeps the per-point work small:

* the planes are stored channels-last ([B*3, R, R, C] in memory), so each bilinear tap reads one
  contiguous C-vector instead of C values spread over C separate planes (3-4x faster grid_sample
  on CPU for ray-coherent points);
* the 1/3 of the plane average is folded into the first layer's weights, and every hidden layer's
  sqrt(2) leaky-ReLU gain into the next layer's weights (leaky ReLU is positively homogeneous);
* the weights' equalised-learning-rate gains are applied once, not on every call;
* world-to-plane scaling (1 / cube_scale) is applied to the three coordinate pairs in one pass.

The result equals ``query_field`` up to float32 rounding (~1e-6; see tests/models/test_fast_field.py).
It tracks no gradients; training keeps using ``query_field``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .layers import ACTIVATION_GAINS
from .triplane import PLANE_AXES, TriPlaneMLP


class FastTriPlaneField:
    """Callable field: points [B, N, 3] (world) -> raw [B, N, 4] (rgb raw, density raw).

    planes: [B, 3, C, R, R]; ``mlp`` is the generator's ``TriPlaneMLP``. Build one per rendered
    batch of tri-planes (it holds a channels-last copy of them).
    """

    def __init__(self, planes: torch.Tensor, mlp: TriPlaneMLP, cube_scale: float) -> None:
        b, n_planes, c, h, w = planes.shape
        if n_planes != 3:
            raise ValueError(f"expected 3 planes, got {n_planes}")
        with torch.no_grad():
            self.planes = planes.detach().reshape(b * 3, c, h, w).contiguous(memory_format=torch.channels_last)
            self.batch = b
            self.channels = c
            self.inv_scale = 1.0 / cube_scale
            self.layers: list[tuple[torch.Tensor, torch.Tensor | None, bool]] = []
            carry_gain = 1.0 / 3.0  # the plane average, folded into the first layer
            for layer in mlp.model:
                weight = layer.weight.detach().to(planes.dtype) * (layer.weight_gain * carry_gain)
                bias = None
                if layer.bias is not None:
                    bias = layer.bias.detach().to(planes.dtype) * layer.bias_gain
                hidden = layer.activation == "lrelu"
                if layer.activation not in ("lrelu", "linear"):
                    raise ValueError(f"unsupported activation {layer.activation!r} in the tri-plane MLP")
                self.layers.append((weight.t().contiguous(), bias, hidden))
                carry_gain = ACTIVATION_GAINS[layer.activation]
            self.out_gain = carry_gain  # 1 for the usual linear output layer

    def _plane_grids(self, points: torch.Tensor) -> torch.Tensor:
        """[B, N, 3] world points -> grid_sample grids [B*3, 1, N, 2] in plane coordinates."""
        b, n, _ = points.shape
        p = points * self.inv_scale
        grids = torch.empty(b, 3, n, 2, dtype=self.planes.dtype, device=points.device)
        for idx, (u, v) in enumerate(PLANE_AXES):
            grids[:, idx, :, 0] = p[..., u]
            grids[:, idx, :, 1] = p[..., v]
        return grids.reshape(b * 3, 1, n, 2)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] -> [B, N, out] with ``out`` = 4 for EpiGRAF (3 colours + density)."""
        with torch.no_grad():
            b, n, _ = points.shape
            if b != self.batch:
                raise ValueError(f"points have batch {b} but the field was prepared for {self.batch}")
            feats = F.grid_sample(
                self.planes, self._plane_grids(points), mode="bilinear", padding_mode="zeros", align_corners=True
            )  # [B*3, C, 1, N]
            feats = feats.reshape(b, 3, self.channels, n).sum(dim=1)  # [B, C, N]; 1/3 is in layer 0
            x = feats.transpose(1, 2).reshape(b * n, self.channels)
            for weight, bias, hidden in self.layers:
                x = torch.addmm(bias, x, weight) if bias is not None else x @ weight
                if hidden:
                    F.leaky_relu_(x, 0.2)  # its sqrt(2) gain is folded into the next layer
            if self.out_gain != 1:
                x = x * self.out_gain
            return x.reshape(b, n, -1)

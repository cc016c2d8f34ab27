"""An inference-only evaluator of the tri-plane field, prepared once per set of tri-planes.

``query_field`` (triplane.py) is the readable reference: sample three planes with ``grid_sample``,
average, run the MLP. At render time the same planes are queried millions of times, so this
module pays a few one-off costs up front and keeps the per-point work small:

* the planes are stored once as a table of feature rows, [B * 3 * R * R, C] (channels last), and
  the three bilinear lookups of a point, with their sum, become ONE weighted gather of 12 rows
  (``F.embedding_bag`` with per-sample weights: 4 corners x 3 planes). Each tap reads one
  contiguous C-vector, the plane sum comes for free and the result is already [N, C], so no
  transposes are needed before the MLP. Taps outside a plane get weight 0 (zero padding), and
  texel coordinates follow ``align_corners=True``, exactly as the reference;
* the MLP runs on ``TriPlaneMLP.folded()`` weights: the 1/3 of the plane average, every hidden
  layer's sqrt(2) leaky-ReLU gain and the equalised-learning-rate gains are folded in once.

The result equals ``query_field`` up to float32 rounding (~1e-6; see tests/models/test_fast_field.py).
It tracks no gradients; training keeps using ``query_field``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .triplane import PLANE_AXES, FoldedMLP, TriPlaneMLP


class FastTriPlaneField:
    """Callable field: points [B, N, 3] (world) -> raw [B, N, 4] (rgb raw, density raw).

    planes: [B, 3, C, H, W]; ``mlp`` is the generator's ``TriPlaneMLP``. Build one per rendered
    batch of tri-planes (it holds a channels-last copy of them).
    """

    def __init__(self, planes: torch.Tensor, mlp: TriPlaneMLP, cube_scale: float) -> None:
        h, w = planes.shape[-2:]
        half = ((w - 1) / 2, (h - 1) / 2)
        # world -> align_corners=True texel coordinates: p * half / cube_scale + half
        self._prepare(
            planes, PLANE_AXES, (half[0] / cube_scale, half[1] / cube_scale), mlp.folded(planes.dtype, planes.device)
        )

    def _prepare(
        self,
        planes: torch.Tensor,
        plane_axes: tuple[tuple[int, int], ...],
        texel_scale: tuple[float, float],
        folded: FoldedMLP,
    ) -> None:
        """Build the zero-bordered table and the folded layers.

        plane_axes[p] = (world axis read as width, as height) of plane p; a world point p lands at
        texel (p[axis] * texel_scale + (size - 1) / 2) in each direction, which covers grid_sample's
        align_corners=True (scale (size - 1) / 2 / extent) and False (scale size / 2 / extent).
        """
        b, n_planes, c, h, w = planes.shape
        if n_planes != 3:
            raise ValueError(f"expected 3 planes, got {n_planes}")
        device = planes.device
        with torch.no_grad():
            # Pad every plane with zeros (1 texel before, 2 after): clamping texel coordinates to
            # [-1, size] then reproduces zero padding without any per-tap masks.
            self.pw, ph = w + 3, h + 3
            table = planes.new_zeros(b, 3, ph, self.pw, c)
            table[:, :, 1 : h + 1, 1 : w + 1].copy_(planes.detach().permute(0, 1, 3, 4, 2))
            self.table = table.view(b * 3 * ph * self.pw, c)
            self.batch, self.channels = b, c
            self.axes = torch.tensor(plane_axes, device=device)  # [3, 2] coordinate pairs
            dt = planes.dtype
            self.scale = torch.tensor(texel_scale, dtype=dt, device=device)
            self.shift = torch.tensor([(w - 1) / 2, (h - 1) / 2], dtype=dt, device=device)
            self.upper = torch.tensor([w, h], dtype=dt, device=device)
            plane_rows = torch.arange(3, device=device) * (ph * self.pw)
            self.offset = (torch.arange(b, device=device) * (3 * ph * self.pw)).view(b, 1, 1) + plane_rows + self.pw + 1
            self.corners = torch.tensor([0, 1, self.pw, self.pw + 1], device=device)  # (x0,y0) (x1,y0) (x0,y1) (x1,y1)
            for layer in folded.layers:
                if layer.activation not in ("lrelu", "linear", "softplus"):
                    raise ValueError(f"unsupported activation {layer.activation!r} in the tri-plane MLP")
            self.layers: list[tuple[torch.Tensor, torch.Tensor | None, str]] = [
                (layer.weight.t().contiguous(), layer.bias, layer.activation) for layer in folded.layers
            ]
            self.out_gain = folded.out_gain

    def taps(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World points [B, N, 3] -> (table rows [B*N, 12], bilinear weights [B*N, 12])."""
        b, n, _ = points.shape
        pix = points[..., self.axes] * self.scale + self.shift  # [B, N, 3, 2] texel coordinates (x, y)
        pix = torch.minimum(pix.clamp_min_(-1.0), self.upper)  # beyond the border: all weight on zeros
        base = pix.floor()
        frac = pix - base
        base = base.long()
        rows = (base[..., 1] * self.pw + base[..., 0] + self.offset).unsqueeze(-1) + self.corners  # [B, N, 3, 4]
        fx, fy = frac[..., 0:1], frac[..., 1:2]
        wx = torch.cat([1 - fx, fx], dim=-1)  # [B, N, 3, 2]
        wy = torch.cat([1 - fy, fy], dim=-1)
        weights = wy.unsqueeze(-1) * wx.unsqueeze(-2)  # [B, N, 3, 2 (y), 2 (x)] in corner order
        return rows.reshape(b * n, 12), weights.reshape(b * n, 12)

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] -> [B, N, out] with ``out`` = 4 for EpiGRAF (3 colours + density)."""
        return self.raw(points)

    def raw(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] -> the MLP's raw outputs [B, N, out]."""
        with torch.no_grad():
            b, n, _ = points.shape
            if b != self.batch:
                raise ValueError(f"points have batch {b} but the field was prepared for {self.batch}")
            rows, weights = self.taps(points.to(self.table.dtype))
            x = F.embedding_bag(rows, self.table, mode="sum", per_sample_weights=weights)  # [B*N, C]
            for weight, bias, activation in self.layers:
                x = torch.addmm(bias, x, weight) if bias is not None else x @ weight
                if activation == "lrelu":
                    F.leaky_relu_(x, 0.2)  # its sqrt(2) gain is folded into the next layer
                elif activation == "softplus":
                    x = F.softplus(x)
            if self.out_gain != 1:
                x = x * self.out_gain
            return x.reshape(b, n, -1)

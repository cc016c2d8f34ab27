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

With ``differentiable=True`` the same field is the CPU training path: gradients reach the planes
and the MLP's parameters (not the points). The table is then a differentiable padded copy of the
planes, the folded weights are recomputed from the parameters (``folded_with_grad``), and the
whole gather + MLP is one autograd function (``_TrainingField``) that works on cache-sized chunks
and recomputes what backward needs instead of keeping it. Gradients equal the reference's to float64
rounding in float64; in float32 they differ by rounding, and where a leaky-ReLU input sits within
rounding of 0 the two paths may take different slopes (as any two summation orders may).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from .triplane import PLANE_AXES, FoldedMLP, TriPlaneMLP

# triplane_gather(points [B, N, 3], table [rows, C], axes (6 ints), affine (scale, shift, upper: 6 floats),
# padded row length, rows per plane, rows per sample, out [B * N, C]) -> None, filling ``out``
GatherKernel = Callable[[torch.Tensor, torch.Tensor, list, list, int, int, int, torch.Tensor], None]
# triplane_field(the same gather arguments, weights, biases, activation codes, out_gain, out [B * N, out]) -> None
FieldKernel = Callable[..., None]


class FastTriPlaneField:
    """Callable field: points [B, N, 3] (world) -> raw [B, N, 4] (rgb raw, density raw).

    planes: [B, 3, C, H, W]; ``mlp`` is the generator's ``TriPlaneMLP``. Build one per rendered
    batch of tri-planes (it holds a channels-last copy of them).
    """

    _gather: GatherKernel | None = None  # see use_gather_kernel
    _field: FieldKernel | None = None

    def __init__(self, planes: torch.Tensor, mlp: TriPlaneMLP, cube_scale: float, differentiable: bool = False) -> None:
        h, w = planes.shape[-2:]
        half = ((w - 1) / 2, (h - 1) / 2)
        fold = mlp.folded_with_grad if differentiable else mlp.folded
        # world -> align_corners=True texel coordinates: p * half / cube_scale + half
        self._prepare(
            planes,
            PLANE_AXES,
            (half[0] / cube_scale, half[1] / cube_scale),
            fold(planes.dtype, planes.device),
            differentiable,
        )

    def _prepare(
        self,
        planes: torch.Tensor,
        plane_axes: tuple[tuple[int, int], ...],
        texel_scale: tuple[float, float],
        folded: FoldedMLP,
        differentiable: bool = False,
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
        self.differentiable = differentiable
        # Pad every plane with zeros (1 texel before, 2 after): clamping texel coordinates to
        # [-1, size] then reproduces zero padding without any per-tap masks.
        self.pw, ph = w + 3, h + 3
        if differentiable:
            self.table = F.pad(planes.permute(0, 1, 3, 4, 2), (0, 0, 1, 2, 1, 2)).reshape(b * 3 * ph * self.pw, c)
        else:
            table = planes.new_zeros(b, 3, ph, self.pw, c)
            table[:, :, 1 : h + 1, 1 : w + 1].copy_(planes.detach().permute(0, 1, 3, 4, 2))
            self.table = table.view(b * 3 * ph * self.pw, c)
        with torch.no_grad():
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
        # (differentiable when ``folded`` is: the transposed copy is part of the graph)
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

    def use_gather_kernel(self, kernel: GatherKernel, field_kernel: FieldKernel | None = None) -> bool:
        """Gather each point's features with ``kernel`` (the toolkit's compiled ``triplane_gather``: taps and
        their weighted sum in one pass over the points, instead of a dozen tensor operations and an
        ``embedding_bag``), and with ``field_kernel`` (``triplane_field``) run the MLP on them point by
        point too, without [points, hidden] tensors. Only for a CPU float32 inference field; returns
        whether the kernels are used."""
        usable = not self.differentiable and self.table.device.type == "cpu" and self.table.dtype == torch.float32
        self._gather = kernel if usable else None
        self._field = field_kernel if usable else None
        plane_rows = self.table.shape[0] // (self.batch * 3)
        affine = [*self.scale.tolist(), *self.shift.tolist(), *self.upper.tolist()]
        self._gather_args = (self.axes.flatten().tolist(), affine, self.pw, plane_rows, 3 * plane_rows)
        if self._field is not None:  # wide layers as [in, out], narrow ones (e.g. 4 outputs) as [out, in]
            codes = {"linear": 0, "lrelu": 1, "softplus": 2}
            self._field_layers = (
                [(w if w.shape[1] % 8 == 0 else w.t()).contiguous() for w, _, _ in self.layers],
                [b.contiguous() if b is not None else self.table.new_empty(0) for _, b, _ in self.layers],
                [codes[a] for _, _, a in self.layers],
                float(self.out_gain),
            )
            self.out_features = int(self.layers[-1][0].shape[1])
        return usable

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] (world) -> the plane sum of their bilinear features [B * N, C] (no gradients)."""
        points = points.detach().to(self.table.dtype)
        if self._gather is not None:
            out = self.table.new_empty(points.shape[0] * points.shape[1], self.channels)
            self._gather(points.contiguous(), self.table, *self._gather_args, out)
            return out
        rows, weights = self.taps(points)
        return F.embedding_bag(rows, self.table, mode="sum", per_sample_weights=weights)

    def raw(self, points: torch.Tensor) -> torch.Tensor:
        """points [B, N, 3] -> the MLP's raw outputs [B, N, out]."""
        b, n, _ = points.shape
        if b != self.batch:
            raise ValueError(f"points have batch {b} but the field was prepared for {self.batch}")
        if self.differentiable:
            with torch.no_grad():
                rows, weights = self.taps(points.detach().to(self.table.dtype))
            return training_field_raw(self, rows, weights).reshape(b, n, -1)
        with torch.no_grad():
            if self._field is not None:
                x = self.table.new_empty(b * n, self.out_features)
                pts = points.detach().to(self.table.dtype).contiguous()
                self._field(pts, self.table, *self._gather_args, *self._field_layers, x)
                return x.reshape(b, n, -1)
            x = _decode_chunk(self.features(points), self.layers)
            if self.out_gain != 1:
                x = x * self.out_gain
            return x.reshape(b, n, -1)


# Points per chunk of the training field: a chunk's gathered features, hidden activations and
# splat products ([chunk * 12, C]) stay a few MB, so the element-wise work runs from cache.
CHUNK_POINTS = 8192

Layers = list[tuple[torch.Tensor, "torch.Tensor | None", str]]


def _activate(x: torch.Tensor, activation: str) -> torch.Tensor:
    """The folded layers' activations (gains folded away), in place where that is safe."""
    if activation == "lrelu":
        return F.leaky_relu_(x, 0.2)
    if activation == "softplus":
        return F.softplus(x)
    return x


def _activation_grad(grad: torch.Tensor, pre: torch.Tensor, activation: str) -> torch.Tensor:
    """d activation(pre) / d pre applied to ``grad``, with PyTorch's own conventions (slope at 0:
    the negative one; softplus linear above 20)."""
    if activation == "lrelu":
        return torch.where(pre > 0, grad, grad * 0.2)
    if activation == "softplus":
        return torch.where(pre > 20, grad, grad * torch.sigmoid(pre))
    return grad


def _decode_chunk(x: torch.Tensor, layers: Layers, keep: list | None = None) -> torch.Tensor:
    """Folded layers on gathered sums [M, C]; ``keep`` collects (input, pre-activation) per layer."""
    for weight, bias, activation in layers:
        pre = torch.addmm(bias, x, weight) if bias is not None else x @ weight
        if keep is not None:
            keep.append((x, pre.clone() if activation == "lrelu" else pre))
        x = _activate(pre, activation)
    return x


class _TrainingField(torch.autograd.Function):
    """The differentiable fast field on gathered taps: table [T, C] + rows/weights [M, 12] + folded
    layers -> raw outputs [M, out], with gradients for the table and the folded layers (the taps are
    constants: camera rays and depths).

    Nothing per point is kept for backward but the taps: it recomputes each chunk's features and
    pre-activations, so memory does not grow with the hidden width, and every element-wise step works
    on cache-sized chunks. The table's gradient is the gather's adjoint, a splat of each point's
    feature gradient onto its 12 rows (``index_add_``; ``embedding_bag``'s own backward sorts all
    indices and is ~3x slower on the CPU, ``grid_sample``'s 3-5x).
    """

    @staticmethod
    def forward(ctx, table, rows, weights, activations, out_gain, *params):  # noqa: ANN001, ANN205
        layers = list(zip(params[0::2], params[1::2], activations, strict=True))
        ctx.activations, ctx.out_gain, ctx.table_rows = activations, out_gain, table.shape[0]
        ctx.save_for_backward(table, rows, weights, *params)
        with torch.no_grad():
            chunks = [
                _decode_chunk(F.embedding_bag(rows[i : i + CHUNK_POINTS], table, mode="sum",
                                              per_sample_weights=weights[i : i + CHUNK_POINTS]), layers)
                for i in range(0, rows.shape[0], CHUNK_POINTS)
            ]  # fmt: skip
            out = torch.cat(chunks)
            return out * out_gain if out_gain != 1 else out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: ANN001, ANN205
        table, rows, weights, *params = ctx.saved_tensors
        layers = list(zip(params[0::2], params[1::2], ctx.activations, strict=True))
        want_table = ctx.needs_input_grad[0]
        grads = [torch.zeros_like(p) if p is not None and ctx.needs_input_grad[5 + i] else None
                 for i, p in enumerate(params)]  # fmt: skip
        table_grad = torch.zeros_like(table) if want_table else None
        grad_out = grad_out.contiguous()
        if ctx.out_gain != 1:
            grad_out = grad_out * ctx.out_gain
        with torch.no_grad():
            for i in range(0, rows.shape[0], CHUNK_POINTS):
                r, w = rows[i : i + CHUNK_POINTS], weights[i : i + CHUNK_POINTS]
                keep: list = []
                _decode_chunk(F.embedding_bag(r, table, mode="sum", per_sample_weights=w), layers, keep)
                g = grad_out[i : i + CHUNK_POINTS]
                for k in range(len(layers) - 1, -1, -1):
                    weight, _, activation = layers[k]
                    x, pre = keep[k]
                    g = _activation_grad(g, pre, activation)
                    if grads[2 * k] is not None:
                        grads[2 * k].addmm_(x.t(), g)
                    if grads[2 * k + 1] is not None:
                        grads[2 * k + 1].add_(g.sum(dim=0))
                    if k > 0 or want_table:
                        g = g @ weight.t()
                if want_table:
                    values = g.unsqueeze(1) * w.unsqueeze(2)  # [chunk, taps, C]
                    table_grad.index_add_(0, r.reshape(-1), values.reshape(-1, g.shape[1]))
        return (table_grad, None, None, None, None, *grads)


def training_field_raw(field: FastTriPlaneField, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``_TrainingField`` on a differentiable field's table and layers: raw outputs [M, out]."""
    params: list[torch.Tensor | None] = []
    for weight, bias, _ in field.layers:
        params += [weight, bias]
    activations = tuple(activation for _, _, activation in field.layers)
    return _TrainingField.apply(field.table, rows, weights, activations, field.out_gain, *params)

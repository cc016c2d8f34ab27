"""Density volumes: the tri-plane field sampled on an axis-aligned grid, fast and memory-bounded.

EpiGRAF's field is a mean of three plane lookups followed by a small MLP. On an axis-aligned grid
the lookups are separable: the xy-plane feature of voxel (i, j, k) depends only on (i, j), the xz
one only on (i, k), the yz one only on (j, k). The first MLP layer is linear, so we sample each
plane once on its 2-D grid, apply the first layer (``Generator.folded_mlp``: gains folded in) per plane, and per
voxel only add three hidden vectors, activate and apply the last layer. Three implementations
compute the same numbers:

* ``naive``: world points through ``G.synthesis.field`` in chunks of 32^3, as the official
  ``extract_geometry.py`` does (the reference);
* ``separable``: the trick above in plain PyTorch, in ~4 MB tiles with preallocated buffers (any
  device; one intra-op thread on CPU, see ``_single_thread``);
* ``kernel``: the per-voxel step fused in a JIT-built C++ CPU kernel (``epigraf_tools.kernels``).

``method='auto'`` picks the kernel on CPU when it builds and the separable path otherwise.

Conventions: a grid has R points per axis spanning [center - box/2, center + box/2] inclusive,
so the voxel size is box / (R - 1) and grid point (0, 0, 0) sits at ``origin = center - box/2``.
The default box is the model's whole tri-plane cube [-cube_scale, cube_scale]^3 (the official
script crops to 0.3). Volumes are returned as ``V[i, j, k]`` = value at (x_i, y_j, z_k) (the
official array convention), held in [z, y, x] memory order (x fastest), which is MRC order, so
``V.T`` is C-contiguous and streams straight into an MRC file.

The default value is ``'raw'``: the MLP's density output before the activation, what the
official script writes; ``'sigma'`` is the renderer's density softplus(raw + density_shift).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from .eg3d_model import as_toolkit_model, is_eg3d
from .errors import EpigrafError
from .models import Generator
from .models.renderer import density_activation
from .models.triplane import FoldedLayer, FoldedMLP

if TYPE_CHECKING:
    from .models.eg3d import EG3DGenerator

VALUE_TYPES = ("raw", "sigma")
METHODS = ("auto", "kernel", "separable", "naive")
MAX_RESOLUTION = 2048  # above this (without force=True) a request is almost certainly a typo
OFFICIAL_CHUNK = 32**3  # points per field call in the official extract_geometry.py
DEFAULT_TILE_BYTES = 4 << 20  # hidden-activation tile of the separable path (fits L2 comfortably)
DEFAULT_SLAB_VOXELS = 1 << 22  # voxels per streamed slab (16 MB of float32)

Progress = Callable[[int, int], None]  # (voxels done, voxels total)
Triple = tuple[float, float, float]


# --------------------------------------------------------------------------- grid
@dataclass(frozen=True)
class VolumeGrid:
    """An axis-aligned grid of ``resolution`` points per axis over a box in world units.

    Axis a holds ``linspace(center[a] - size[a] / 2, center[a] + size[a] / 2, resolution[a])``.
    """

    resolution: tuple[int, int, int]
    center: Triple
    size: Triple

    @property
    def voxel_size(self) -> Triple:
        return tuple(s / (r - 1) for s, r in zip(self.size, self.resolution, strict=True))  # type: ignore[return-value]

    @property
    def origin(self) -> Triple:
        """World position of grid point (0, 0, 0)."""
        return tuple(c - s / 2 for c, s in zip(self.center, self.size, strict=True))  # type: ignore[return-value]

    @property
    def num_voxels(self) -> int:
        rx, ry, rz = self.resolution
        return rx * ry * rz

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        rx, ry, rz = self.resolution
        return (rz, ry, rx)

    def axis(self, a: int) -> np.ndarray:
        """World coordinates [R_a] (float64) of the grid points along axis a (0 = x, 1 = y, 2 = z)."""
        half = self.size[a] / 2
        return np.linspace(self.center[a] - half, self.center[a] + half, self.resolution[a])

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        return {
            "resolution": list(self.resolution),
            "center": list(self.center),
            "box": list(self.size),
            "voxel_size": list(self.voxel_size),
            "origin": list(self.origin),
        }


def _triple(value: float | Sequence[float], name: str) -> Triple:
    if isinstance(value, (int, float)):
        vals = [float(value)] * 3
    else:
        vals = [float(v) for v in value]
    if len(vals) != 3:
        raise EpigrafError(f"{name} needs 1 or 3 numbers, got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise EpigrafError(f"{name} must be finite, got {vals}")
    return (vals[0], vals[1], vals[2])


def make_volume_grid(
    cube_scale: float,
    resolution: int | Sequence[int] = 512,
    box: float | Sequence[float] | None = None,
    center: float | Sequence[float] | None = None,
    force: bool = False,
) -> VolumeGrid:
    """Validate the user's grid request; the default box is the tri-plane cube (side 2 * cube_scale).

    ``box`` is the side length (one number or x, y, z); ``center`` the box centre in world units.
    Resolutions must lie in [2, 2048] (larger only with ``force=True``).
    """
    res = [int(resolution)] * 3 if isinstance(resolution, (int, np.integer)) else [int(r) for r in resolution]
    if len(res) != 3:
        raise EpigrafError(f"resolution needs 1 or 3 integers, got {len(res)}")
    for r in res:
        if r < 2:
            raise EpigrafError(f"resolution {r} is too small: a grid needs at least 2 points per axis")
        if r > MAX_RESOLUTION and not force:
            raise EpigrafError(
                f"resolution {r} exceeds {MAX_RESOLUTION} ({r**3 * 4 / 2**30:.0f} GiB of float32 for a cube); "
                "pass force=True if you mean it"
            )
    size = _triple(2.0 * cube_scale if box is None else box, "box")
    if min(size) <= 0:
        raise EpigrafError(f"box sides must be positive, got {list(size)}")
    ctr = _triple(0.0 if center is None else center, "center")
    return VolumeGrid((res[0], res[1], res[2]), ctr, size)


# --------------------------------------------------------------------------- planes
@torch.no_grad()
def as_planes(G: Generator, ws_or_planes: torch.Tensor) -> torch.Tensor:
    """ws [1, num_ws, w_dim] / [num_ws, w_dim] or planes [1, 3, C, R, R] / [3, C, R, R] -> [1, 3, C, R, R].

    ws go through ``G.planes(ws, noise_mode='const')``, as in the official geometry script.
    """
    t = ws_or_planes
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim == 4:
        t = t.unsqueeze(0)
    if t.ndim == 3:
        if t.shape[0] != 1:
            raise ValueError(f"extract one volume at a time: got ws for {t.shape[0]} samples")
        return G.planes(t, noise_mode="const")
    if t.ndim != 5 or t.shape[1] != 3:
        raise ValueError(f"expected ws [1, num_ws, w_dim] or planes [1, 3, C, R, R], got {tuple(ws_or_planes.shape)}")
    if t.shape[0] != 1:
        raise ValueError(f"extract one volume at a time: got planes for {t.shape[0]} samples")
    return t


# --------------------------------------------------------------------------- the folded MLP
@dataclass
class FoldedField:
    """The tri-plane MLP rearranged for separable evaluation (density output only).

    proj [H, C]: first-layer runtime weight / 3 (the plane mean folded in); bias0 [H];
    act0: the first layer's activation ('lrelu' or 'linear'); middle: the runtime (weight, bias,
    activation) of hidden layers after the first, each weight pre-multiplied by the previous
    activation's gain; w_out [H_last], b_out: the density row of the last layer, likewise.
    """

    proj: torch.Tensor
    bias0: torch.Tensor
    act0: str
    middle: list[tuple[torch.Tensor, torch.Tensor, str]]
    w_out: torch.Tensor
    b_out: float

    @classmethod
    @torch.no_grad()
    def from_generator(cls, G: Generator, device: torch.device) -> FoldedField:
        """Rearranges the generator's folded MLP (``Generator.folded_mlp``: gains already applied)."""
        return cls.from_folded_mlp(G.folded_mlp(torch.float32, device), device)

    @classmethod
    @torch.no_grad()
    def from_eg3d(cls, G: EG3DGenerator, device: torch.device) -> FoldedField:
        """The EG3D OSG decoder (plane mean -> FC -> softplus -> FC, density = output 0), same layout.

        Its first layer is linear in the plane mean, so the separable trick applies as for EpiGRAF;
        the hidden activation is softplus (act0 'softplus').
        """
        from .models.eg3d.fast_field import folded_osg_decoder

        return cls.from_folded_mlp(folded_osg_decoder(G.decoder, torch.float32, device), device, density_row=0)

    @classmethod
    def from_folded_mlp(cls, folded: FoldedMLP, device: torch.device, density_row: int = -1) -> FoldedField:
        """Any folded tri-plane MLP whose output ``density_row`` is the raw density."""
        layers = folded.layers

        def bias(layer: FoldedLayer) -> torch.Tensor:
            return layer.bias if layer.bias is not None else torch.zeros(layer.weight.shape[0], device=device)

        if len(layers) == 1:  # a linear field: keep only the density row
            w0 = layers[0].weight * folded.out_gain
            b0 = bias(layers[0]) * folded.out_gain
            row = slice(density_row, density_row + 1 if density_row != -1 else None)
            return cls(w0[row], b0[row], "linear", [], torch.ones(1, device=device), 0.0)
        first, last = layers[0], layers[-1]
        middle = [(layer.weight, bias(layer), layer.activation) for layer in layers[1:-1]]
        w_out = (last.weight[density_row] * folded.out_gain).contiguous()
        b_out = float(bias(last)[density_row]) * folded.out_gain
        return cls(first.weight, bias(first), first.activation, middle, w_out, b_out)

    @property
    def kernel_slope(self) -> float | None:
        """Leaky-ReLU slope for the fused kernel, or None when it has no piecewise-linear form for this MLP."""
        if self.middle:
            return None
        return {"lrelu": 0.2, "linear": 1.0}.get(self.act0)

    @property
    def kernel_supported(self) -> bool:
        """Whether a fused kernel handles this MLP (one hidden layer: leaky ReLU, linear or softplus)."""
        return self.kernel_slope is not None or (self.act0 == "softplus" and not self.middle)

    def hidden_to_density(self, h: torch.Tensor) -> torch.Tensor:
        """Pre-activations [N, H] (overwritten) -> raw density [N]."""
        h = _activate_(h, self.act0)
        for w, b, act in self.middle:
            h = _activate_(torch.addmm(b, h, w.t()), act)
        return torch.mv(h, self.w_out).add_(self.b_out)


def _activate_(h: torch.Tensor, activation: str) -> torch.Tensor:
    """Hidden activation of a folded layer (gains folded elsewhere), in place where torch allows."""
    if activation == "lrelu":
        return F.leaky_relu_(h, 0.2)
    if activation == "softplus":
        return F.softplus(h)
    return h


def _plane_features(
    plane: torch.Tensor, u: torch.Tensor, v: torch.Tensor, align_corners: bool = True, kernel: Any = None
) -> torch.Tensor:
    """Bilinear lookups of plane [C, R, R] at width coords u [W] x height coords v [Hh] -> [C, Hh, W].

    Coordinates are grid_sample's [-1, 1]; zeros outside. EpiGRAF samples with align_corners=True,
    EG3D with False. With the fused kernel module (CPU) the grid's separable taps go to its
    ``plane_rows``; otherwise grid_sample. The two agree to float32 rounding (the same taps and weights,
    summed in another order).
    """
    if kernel is not None and plane.device.type == "cpu" and plane.dtype == torch.float32:
        y_taps = _axis_taps(v, plane.shape[1], align_corners)
        x_taps = _axis_taps(u, plane.shape[2], align_corners)
        return kernel.plane_rows(plane.contiguous(), *y_taps, *x_taps)
    vv, uu = torch.meshgrid(v, u, indexing="ij")
    grid = torch.stack([uu, vv], dim=-1).unsqueeze(0)  # [1, Hh, W, 2]: (width, height) pairs
    feats = F.grid_sample(plane.unsqueeze(0), grid, mode="bilinear", padding_mode="zeros", align_corners=align_corners)
    return feats[0]


def _axis_taps(
    coords: torch.Tensor, size: int, align_corners: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """grid_sample's two bilinear taps along one axis: (i0, i1, w0, w1) for coords in [-1, 1].

    The source coordinate and the weights are grid_sample's own (w0 = i0 + 1 - p, w1 = p - i0); a tap
    outside [0, size) gets weight 0 (zero padding) and an index clamped into the plane.
    """
    coords = coords.float().cpu()
    p = (coords + 1) / 2 * (size - 1) if align_corners else ((coords + 1) * size - 1) / 2
    lower = torch.floor(p)
    i0 = lower.long()
    i1 = i0 + 1
    w0 = (lower + 1) - p
    w1 = p - lower
    w0 = torch.where((i0 >= 0) & (i0 < size), w0, 0.0)
    w1 = torch.where((i1 >= 0) & (i1 < size), w1, 0.0)
    return i0.clamp(0, size - 1), i1.clamp(0, size - 1), w0.contiguous(), w1.contiguous()


def _matmul_cf(weight: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """weight [H, C] x features [C, Hh, W] -> [Hh, W, H], contiguous."""
    return torch.matmul(feats.permute(1, 2, 0), weight.t()).contiguous()


def _matmul_x_blocked(weight: torch.Tensor, feats: torch.Tensor, width: int) -> torch.Tensor:
    """weight [H, C] x features [C, Hh, W] -> [Hh, nb, H, width], the fused kernels' x-blocked layout.

    Block b holds x-voxels [b width, (b + 1) width) of every hidden unit, contiguous (the kernels stream it);
    W is padded with zero features up to nb = ceil(W / width) blocks, whose extra voxels are never stored.
    One batched product writes this layout directly (faster than [Hh, H, W] and a permuting copy, measured).
    """
    c, hh, w = feats.shape
    nb = -(-w // width)
    if nb * width != w:
        feats = F.pad(feats, (0, nb * width - w))
    return torch.matmul(weight, feats.view(c, hh, nb, width).permute(1, 2, 0, 3)).contiguous()


# (start, stop) -> plane features [C, stop - start, W] for rows j (xy map) or sections k (xz, yz maps)
PlaneRows = Callable[[int, int], torch.Tensor]
SlabFill = Callable[[int, int, torch.Tensor], None]  # (k0, k1, slab [k1 - k0, Ry, Rx]) -> fills slab


def _sigma_mode(sigma: tuple[str, float] | None) -> int:
    """The kernels' output mode: 0 raw, 1 softplus(raw + shift), 2 relu(raw + shift)."""
    return 0 if sigma is None else (1 if sigma[0] == "softplus" else 2)


class _ReluKernelOperands:
    """The leaky-ReLU field in ``relu_slab``'s form (see density_slab.cpp).

    With slope s, w . lrelu(v) = s (w . v) + sum_h (1 - s) w_h relu(v_h): the first part is linear,
    hence separable (one extra projection row, ``lin``); in the second, unit h is scaled by
    |(1 - s) w_h| (relu is positively homogeneous) and the units are ordered positive first.
    """

    def __init__(self, folded: FoldedField, slope: float) -> None:
        w = folded.w_out * (1.0 - slope)
        pos, neg = torch.nonzero(w > 0).flatten(), torch.nonzero(w < 0).flatten()
        order = torch.cat([pos, neg])
        scale = w[order].abs()
        self.npos = int(pos.numel())
        self.proj = (folded.proj[order] * scale[:, None]).contiguous()
        self.bias = folded.bias0[order] * scale
        lin_w = folded.w_out * slope
        self.lin = (lin_w @ folded.proj)[None]  # [1, C]
        self.lin_bias = float(lin_w @ folded.bias0) + folded.b_out
        # The (z, y) term enters the kernel negated (-c), and its relu identity adds back +-c per unit:
        # both folded into the projections here, so no per-slab sums or negations.
        sign = torch.cat([torch.ones(self.npos), -torch.ones(len(order) - self.npos)]).to(w)
        self.neg_proj = (-self.proj).contiguous()
        self.yz_lin = self.lin + (sign @ self.proj)[None]

    def xy(self, feats: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[C, n, Rx] -> (A [n, nb, H', width] x-blocked, alpha [n, Rx])."""
        a = _matmul_x_blocked(self.proj, feats, width).add_(self.bias[:, None])
        return a, _matmul_cf(self.lin, feats)[..., 0].add_(self.lin_bias)

    def xz(self, feats: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[C, T, Rx] -> (B [T, nb, H', width] x-blocked, beta [T, Rx])."""
        return _matmul_x_blocked(self.proj, feats, width), _matmul_cf(self.lin, feats)[..., 0].contiguous()

    def yz(self, feats: torch.Tensor | None, t: int, ry: int) -> tuple[torch.Tensor, torch.Tensor]:
        """[C, T, Ry] (or None: no such term) -> (-C [T, Ry, H'], gamma [T, Ry])."""
        if feats is None:
            return torch.zeros(t, ry, self.proj.shape[0]), torch.zeros(t, ry)
        return _matmul_cf(self.neg_proj, feats), _matmul_cf(self.yz_lin, feats)[..., 0].contiguous()


def _unit_range(blocked: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-unit (min, max) of an x-blocked term [n, nb, H, width] (NaN where the unit has a NaN)."""
    return blocked.amin(dim=(0, 1, 3)), blocked.amax(dim=(0, 1, 3))


def product_units(
    a_range: tuple[torch.Tensor, torch.Tensor], b_range: tuple[torch.Tensor, torch.Tensor], limit: float
) -> torch.Tensor:
    """uint8 flags [H]: the units whose softplus(a + b) may take the kernel's product form log(1 + e^a e^b).

    Only where |a|, |b| and a + b stay within ``limit`` (the kernel's ``product_limit``) over the
    slab: then e^a, e^b and their product are normal floats. Other units (and NaN) keep the plain
    softplus: the flags change how softplus is evaluated (to float32 rounding), never what.
    """
    (a_lo, a_hi), (b_lo, b_hi) = a_range, b_range
    ok = (a_lo >= -limit) & (a_hi <= limit) & (b_lo >= -limit) & (b_hi <= limit) & (a_hi + b_hi <= limit)
    return ok.to(torch.uint8).contiguous()


def separable_filler(
    folded: FoldedField,
    xy: PlaneRows | None,
    xz: PlaneRows,
    yz: PlaneRows | None,
    shape_zyx: tuple[int, int, int],
    device: torch.device,
    kernel=None,
    sigma: tuple[str, float] | None = None,
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> SlabFill:
    """The separable evaluation of ``folded`` as a slab filler: the building block of every fast volume.

    xy(j0, j1) gives the features [C, n, Rx] of the plane term that depends on (y, x), or None when there
    is none; xz(k0, k1) [C, T, Rx] the (z, x) term (EG3D: the sum of its two (z, x)-dependent planes);
    yz(k0, k1) [C, T, Ry] the (z, y) term, or None. The first layer is applied to each term
    once; ``kernel`` (the fused module, CPU only) or PyTorch tiles do the per-voxel rest. ``sigma``
    = (clamp mode, shift) turns raw density into sigma = act(raw + shift). Peak memory: the xy map
    (Ry * Rx * H floats, 64 MB at 512^2 and H = 64) plus one slab's maps and one tile.
    """
    rz, ry, rx = shape_zyx
    rows = max(1, (1 << 24) // max(1, rx * folded.proj.shape[1]))
    row_blocks = [(j0, min(ry, j0 + rows)) for j0 in range(0, ry, rows)]
    mode = _sigma_mode(sigma)
    shift = 0.0 if sigma is None else float(sigma[1])

    if xy is None and yz is None:
        raise ValueError("a separable field needs a (y, x) or a (z, y) term besides the (z, x) one")
    if kernel is not None and folded.act0 == "softplus":
        width = int(kernel.softplus_block)
        a_map = None
        if xy is not None:
            a_map = torch.cat([_matmul_x_blocked(folded.proj, xy(j0, j1), width) for j0, j1 in row_blocks])
            a_map += folded.bias0[:, None]
        no_term = torch.empty(0)
        # two terms (EG3D): the kernel's product form, for the units whose exponentials stay in range
        product = (xy is None) != (yz is None) and bool(getattr(kernel, "product_form", False))
        a_range = _unit_range(a_map) if product and a_map is not None else None

        def fill_softplus(k0: int, k1: int, slab: torch.Tensor) -> None:
            b_map = _matmul_x_blocked(folded.proj, xz(k0, k1), width)
            c_map = None if yz is None else _matmul_cf(folded.proj, yz(k0, k1))
            if a_map is None:
                c_map += folded.bias0  # the first layer's bias goes with the row term
            a, c = (no_term if a_map is None else a_map), (no_term if c_map is None else c_map)
            if product:
                row_range = a_range if a_range is not None else (c_map.amin(dim=(0, 1)), c_map.amax(dim=(0, 1)))
                units = product_units(row_range, _unit_range(b_map), float(kernel.product_limit))
                kernel.softplus_product_slab(a, b_map, c, folded.w_out, units, folded.b_out, mode, shift, slab)
            else:
                kernel.softplus_slab(a, b_map, c, folded.w_out, folded.b_out, mode, shift, slab)

        return fill_softplus

    if kernel is not None and xy is not None:
        ops = _ReluKernelOperands(folded, folded.kernel_slope)
        width = int(kernel.relu_block)
        parts = [ops.xy(xy(j0, j1), width) for j0, j1 in row_blocks]
        a_map = torch.cat([p[0] for p in parts])
        alpha = torch.cat([p[1] for p in parts])
        del parts

        def fill_relu(k0: int, k1: int, slab: torch.Tensor) -> None:
            b_map, beta = ops.xz(xz(k0, k1), width)
            nc_map, gamma = ops.yz(None if yz is None else yz(k0, k1), k1 - k0, ry)
            kernel.relu_slab(a_map, b_map, nc_map, alpha, beta, gamma, ops.npos, mode, shift, slab)

        return fill_relu

    hdim = folded.proj.shape[0]
    a_map = None
    if xy is not None:
        a_map = torch.cat([_matmul_cf(folded.proj, xy(j0, j1)) for j0, j1 in row_blocks])
        a_map += folded.bias0
    tile_rows = max(1, min(ry, tile_bytes // max(1, rx * hdim * 4)))
    buf = torch.empty(tile_rows, rx, hdim, device=device)

    def fill_torch(k0: int, k1: int, slab: torch.Tensor) -> None:
        b_map = _matmul_cf(folded.proj, xz(k0, k1))
        c_map = _matmul_cf(folded.proj, yz(k0, k1)) if yz is not None else None
        if a_map is None:
            c_map += folded.bias0
        with _single_thread(device):
            _separable_slab(folded, a_map, b_map, c_map, slab, buf)
        if sigma is not None:
            slab.copy_(density_activation(slab, shift, sigma[0]))

    return fill_torch


def stream_slabs(
    out: np.ndarray | None,
    fill: SlabFill,
    device: torch.device,
    slab_voxels: int = DEFAULT_SLAB_VOXELS,
    progress: Progress | None = None,
    on_slab: Callable[[int, np.ndarray], None] | None = None,
    shape_xyz: tuple[int, int, int] | None = None,
) -> np.ndarray | None:
    """Fill ``out`` [Rx, Ry, Rz] (float32, ideally a transposed view of a C-contiguous [z, y, x] buffer)
    slab by slab of z-sections; CPU slabs are written in place, others copied back. Returns ``out``.

    ``out`` None streams instead: every slab of the ``shape_xyz`` grid is filled into one reused
    buffer and only shown to ``on_slab`` (which must copy what it keeps), so the volume is never
    held whole; returns None.
    """
    rx, ry, rz = out.shape if out is not None else shape_xyz
    zyx_view = out.transpose(2, 1, 0) if out is not None else None
    direct = zyx_view is not None and zyx_view.flags.c_contiguous and device.type == "cpu"
    slab_t = max(1, min(rz, slab_voxels // (rx * ry)))
    reused = torch.empty(slab_t, ry, rx, device=device) if out is None else None
    total = rx * ry * rz
    done = 0
    for k0 in range(0, rz, slab_t):
        k1 = min(rz, k0 + slab_t)
        if direct:
            slab = torch.from_numpy(zyx_view[k0:k1])
        elif reused is not None:
            slab = reused[: k1 - k0]
        else:
            slab = torch.empty(k1 - k0, ry, rx, device=device)
        fill(k0, k1, slab)
        slab_np = zyx_view[k0:k1] if direct else slab.cpu().numpy()
        if zyx_view is not None and not direct:
            zyx_view[k0:k1] = slab_np
        if on_slab is not None:
            on_slab(k0, slab_np)
        done += (k1 - k0) * rx * ry
        if progress is not None:
            progress(done, total)
    return out


# --------------------------------------------------------------------------- extraction
def _normalised_axes(grid: VolumeGrid, cube_scale: float, device: torch.device) -> list[torch.Tensor]:
    # float64 until the end: bf16/half coordinates would read the wrong texels.
    # (cast on the CPU first: some devices, e.g. MPS, have no float64)
    return [torch.from_numpy(grid.axis(a) / cube_scale).float().to(device) for a in range(3)]


def _choose_method(method: str, device: torch.device, folded: FoldedField, voxels: int):
    """-> (method actually used, kernel module or None).

    ``auto`` uses the kernel when it is already built, and builds it only for grids large enough to
    repay the one-off build (``kernels.AUTO_BUILD_VOXELS``); otherwise the separable path, silently.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if method in ("auto", "kernel"):
        from .kernels import auto_builds_kernel, kernel_status, load_density_kernel

        usable = device.type == "cpu" and folded.kernel_supported
        if method == "auto" and usable and not auto_builds_kernel(voxels):
            return "separable", None
        module = load_density_kernel() if usable else None
        if module is not None:
            return "kernel", module
        if method == "kernel":
            why = kernel_status() if usable else "the kernel handles CPU tensors and 2-layer MLPs only"
            raise RuntimeError(f"the fused density kernel is unavailable: {why}")
        return "separable", None
    return method, None


@torch.no_grad()
def extract_density(
    G: Generator,
    ws_or_planes: torch.Tensor,
    resolution: int | Sequence[int] = 512,
    box: float | Sequence[float] | None = None,
    center: float | Sequence[float] | None = None,
    value: str = "raw",
    out: np.ndarray | None = None,
    progress: Progress | None = None,
    method: str = "auto",
    grid: VolumeGrid | None = None,
    force: bool = False,
    on_slab: Callable[[int, np.ndarray], None] | None = None,
    tile_bytes: int = DEFAULT_TILE_BYTES,
    slab_voxels: int = DEFAULT_SLAB_VOXELS,
    sink: Callable[[int, np.ndarray], None] | None = None,
) -> np.ndarray | None:
    """Sample the density of one sample on an axis-aligned grid.

    ws_or_planes: ws [1, num_ws, w_dim] or tri-planes [1, 3, C, R, R] (no batch dim also works).
    value: 'raw' (default; pre-activation MLP output, as the official script) or 'sigma'
    (softplus(raw + density_shift), the renderer's density).
    out: optional float32 target of shape [Rx, Ry, Rz], e.g. ``mrc.data.T`` of a memory-mapped MRC
    file; a transposed view of a [z, y, x] C-contiguous buffer is written slab by slab without
    copies. ``grid`` overrides resolution/box/center.
    progress(done, total) is called after each slab; on_slab(k0, slab [T, Ry, Rx]) sees each slab.
    Returns V [Rx, Ry, Rz] with V[i, j, k] = value at (x_i, y_j, z_k), memory in [z, y, x] order.
    ``sink`` (not with ``out``) streams instead: sink(k0, slab [T, Ry, Rx]) receives
    each slab from one reused buffer and the volume is never held whole; returns None.
    Peak memory beyond ``out``: the xy-plane hidden map (Rx * Ry * H floats, 64 MB at 512^2) plus
    one slab and one tile.
    """
    if value not in VALUE_TYPES:
        raise EpigrafError(f"unknown value type {value!r}; expected 'raw' or 'sigma'")
    G = as_toolkit_model(G)
    if grid is None:
        grid = make_volume_grid(G.config.cube_scale, resolution, box, center, force=force)
    planes = as_planes(G, ws_or_planes).float()
    device = planes.device
    rx, ry, rz = grid.resolution

    if sink is not None:
        if out is not None or on_slab is not None:
            raise ValueError("sink streams the volume: it takes neither out nor on_slab")
    elif out is None:
        zyx = np.empty(grid.shape_zyx, dtype=np.float32)
        out = zyx.transpose(2, 1, 0)
    if out is not None and (tuple(out.shape) != (rx, ry, rz) or out.dtype != np.float32):
        raise ValueError(f"out must be float32 with shape {(rx, ry, rz)}, got {out.dtype} {tuple(out.shape)}")
    if is_eg3d(G):  # EG3D's OSG decoder: its own fast path (eg3d_volume), or the plain one for 'naive'
        check_eg3d_method(method)
        fill = _eg3d_filler(G, planes, grid, value, method, tile_bytes)
        return stream_slabs(out, fill, device, slab_voxels, progress, on_slab if sink is None else sink, (rx, ry, rz))

    folded = FoldedField.from_generator(G, device)
    used, kernel = _choose_method(method, device, folded, grid.num_voxels)
    cfg = G.config
    sigma = (cfg.clamp_mode, float(cfg.density_shift)) if value == "sigma" else None
    if used == "naive":

        def fill(k0: int, k1: int, slab: torch.Tensor) -> None:
            _naive_slab(G, planes, grid, k0, k1, slab)
            if sigma is not None:
                slab.copy_(density_activation(slab, sigma[1], sigma[0]))

    else:
        ax, ay, az = _normalised_axes(grid, cfg.cube_scale, device)
        plane = planes[0]
        fill = separable_filler(
            folded,
            lambda j0, j1: _plane_features(plane[0], ax, ay[j0:j1], kernel=kernel),
            lambda k0, k1: _plane_features(plane[1], ax, az[k0:k1], kernel=kernel),
            lambda k0, k1: _plane_features(plane[2], ay, az[k0:k1], kernel=kernel),
            grid.shape_zyx,
            device,
            kernel,
            sigma,
            tile_bytes,
        )
    return stream_slabs(out, fill, device, slab_voxels, progress, on_slab if sink is None else sink, (rx, ry, rz))


@contextlib.contextmanager
def _single_thread(device: torch.device) -> Iterator[None]:
    """Run the CPU tile loop on one intra-op thread.

    Each tile is a handful of ~4 MB element-wise ops; splitting every one of them across threads
    costs a synchronisation per op, which on a busy machine dominates (measured on 2 shared cores:
    1.0 s single-threaded vs 24 s with 2 threads for 256^3). One thread keeps the tile in its cache.
    """
    if device.type != "cpu":
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _separable_slab(
    folded: FoldedField,
    a_map: torch.Tensor | None,
    b_map: torch.Tensor,
    c_map: torch.Tensor | None,
    slab: torch.Tensor,
    buf: torch.Tensor,
) -> None:
    """Fill slab [T, Ry, Rx] from A [Ry, Rx, H] (or None), B [T, Rx, H], C [T, Ry, H] (or None) in tiles of rows."""
    ry, rx = slab.shape[1:]
    hdim = b_map.shape[-1]
    tile_rows = buf.shape[0]
    for k in range(slab.shape[0]):
        b_row = b_map[k].unsqueeze(0)
        for j0 in range(0, ry, tile_rows):
            j1 = min(ry, j0 + tile_rows)
            h = buf[: j1 - j0]
            if a_map is not None:
                torch.add(a_map[j0:j1], b_row, out=h)
            else:
                h.copy_(b_row.expand(j1 - j0, rx, hdim))
            if c_map is not None:
                h.add_(c_map[k, j0:j1].unsqueeze(1))
            slab[k, j0:j1] = folded.hidden_to_density(h.view(-1, hdim)).view(j1 - j0, rx)


def _naive_slab(
    G: Generator,
    planes: torch.Tensor,
    grid: VolumeGrid,
    k0: int,
    k1: int,
    slab: torch.Tensor,
    density: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> None:
    """Reference: every voxel's world point through the full field, 32^3 points per call.

    ``density`` maps world points [N, 3] to raw density [N] (default: ``G.synthesis.field``'s).
    """
    device = planes.device
    rx, ry, _ = grid.resolution
    axes = [torch.from_numpy(grid.axis(a)).float().to(device) for a in range(3)]
    flat = slab.view(-1)
    total = flat.numel()
    for n0 in range(0, total, OFFICIAL_CHUNK):
        n = torch.arange(n0, min(total, n0 + OFFICIAL_CHUNK), device=device)
        pts = torch.stack([axes[0][n % rx], axes[1][(n // rx) % ry], axes[2][k0 + n // (rx * ry)]], dim=-1)
        if density is None:
            flat[n0 : n0 + n.numel()] = G.synthesis.field(planes, pts.unsqueeze(0))[0, :, -1]
        else:
            flat[n0 : n0 + n.numel()] = density(pts)


EG3D_METHODS = METHODS  # 'naive' is the plain path through the EG3D decoder, the others eg3d_volume's


def check_eg3d_method(method: str) -> None:
    """Refuse an extraction path EG3D models do not have."""
    if method not in EG3D_METHODS:
        raise EpigrafError(f"method {method!r} is not available for EG3D models; use one of {', '.join(EG3D_METHODS)}")


def _eg3d_filler(G, planes: torch.Tensor, grid: VolumeGrid, value: str, method: str, tile_bytes: int) -> SlabFill:
    """An EG3D model's density on ``grid`` (model world) as a slab filler along the model's z.

    Voxel (i, j, k) is the EG3D point (-z_k, y_j, x_i) (``eg3d_model.to_eg3d_points``); 'sigma' is
    softplus(raw - 1). 'naive' is like EG3D's shape extraction (the decoder's raw density of every
    voxel's world point, ``OFFICIAL_CHUNK``-sized calls); the others are
    ``eg3d_volume.model_order_filler`` (separable trick, fused kernel).
    """
    if method != "naive":
        from .eg3d_volume import model_order_filler

        axes = (grid.axis(0), grid.axis(1), grid.axis(2))
        return model_order_filler(G.eg3d, planes, axes, value, method, tile_bytes)
    cfg = G.config

    def fill(k0: int, k1: int, slab: torch.Tensor) -> None:
        with torch.inference_mode():
            _naive_slab(G, planes, grid, k0, k1, slab, density=lambda p: G.density(planes, p.unsqueeze(0))[0])
            if value == "sigma":
                slab.copy_(density_activation(slab, cfg.density_shift, cfg.clamp_mode))

    return fill

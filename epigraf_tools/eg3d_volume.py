"""Fast density volumes of EG3D models: the separable trick and the fused kernel for the OSG decoder.

These are building blocks (the ``export-volume`` dispatch and the EG3D grid conventions live with
the EG3D commands): give them an ``EG3DGenerator``, its tri-planes and the grid's world axes.

EG3D reads plane 0 at (x, y), plane 1 at (x, z) and plane 2 at (z, x) (``sample_triplane``), so on
an axis-aligned grid one plane term depends on (y, x) and two on (z, x); no term depends on (y, z).
The decoder's first layer is linear in the plane mean, so each plane is sampled once on its 2-D
grid (grid_sample at coordinates 2 * p / box_warp, bilinear, zeros outside, align_corners=False,
as the renderer), the (z, x) features of planes 1 and 2 are added, the first layer is applied per
term, and per voxel only the sum, the softplus and the density row remain
(``volume.separable_filler``; the fused ``softplus_slab`` kernel on CPU).

``eg3d_density_reference`` is the procedure of EG3D's shape extraction (``gen_samples.py``): every
voxel's world point through the model's own decoder, chunked; the fast paths equal it to float32
rounding (see tests/toolkit/test_eg3d_volume.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .models.eg3d import EG3DGenerator
from .volume import (
    DEFAULT_SLAB_VOXELS,
    DEFAULT_TILE_BYTES,
    FoldedField,
    PlaneRows,
    Progress,
    SlabFill,
    _choose_method,
    _plane_features,
    separable_filler,
    stream_slabs,
)

EG3D_SIGMA = ("softplus", -1.0)  # the marcher's density: softplus(raw - 1)
REFERENCE_CHUNK = 1_000_000  # points per decoder call in EG3D's gen_samples.py shape extraction
Axes = Sequence[np.ndarray | torch.Tensor | Sequence[float]]  # world coordinates of the grid along x, y, z


def _axes_tensor(axes: Axes) -> list[torch.Tensor]:
    if len(axes) != 3:
        raise ValueError(f"expected three world axes (x, y, z), got {len(axes)}")
    # float64 until the end, so the float32 coordinates are the correctly rounded ones
    return [torch.as_tensor(np.asarray(a, dtype=np.float64)) for a in axes]


def _check(planes: torch.Tensor) -> torch.Tensor:
    if planes.ndim == 4:
        planes = planes.unsqueeze(0)
    if planes.ndim != 5 or planes.shape[0] != 1 or planes.shape[1] != 3:
        raise ValueError(f"expected tri-planes [1, 3, C, H, W] of one sample, got {list(planes.shape)}")
    return planes.float()


def _target(out: np.ndarray | None, shape_xyz: tuple[int, int, int]) -> np.ndarray:
    if out is None:
        return np.empty(shape_xyz[::-1], dtype=np.float32).transpose(2, 1, 0)
    if tuple(out.shape) != shape_xyz or out.dtype != np.float32:
        raise ValueError(f"out must be float32 with shape {shape_xyz}, got {out.dtype} {tuple(out.shape)}")
    return out


# EG3D reads plane 0 at (x, y), plane 1 at (x, z) and plane 2 at (z, x) (axis 0 = x, 1 = y, 2 = z)
PLANE_AXES = ((0, 1), (0, 2), (2, 0))


def _grid_filler(
    G: EG3DGenerator,
    planes: torch.Tensor,
    coords: Sequence[torch.Tensor],
    roles: tuple[int, int, int],
    value: str,
    method: str,
    tile_bytes: int,
) -> SlabFill:
    """``separable_filler`` for a grid whose sections, rows and columns run along EG3D axes ``roles``.

    coords[a]: the grid's coordinates along EG3D axis a, already in plane units (2 p / box_warp). Each
    plane's term depends on the two grid roles its axes take: (row, column) is the kernels' A term,
    (section, column) B, (section, row) C; planes sharing a pair are added before the first layer.
    """
    if value not in ("raw", "sigma"):
        raise ValueError(f"unknown value type {value!r}; expected 'raw' or 'sigma'")
    if method == "naive":
        raise ValueError("method 'naive' is eg3d_density_reference")
    planes = _check(planes)
    device = planes.device
    shape_zyx = tuple(len(coords[a]) for a in roles)
    folded = FoldedField.from_eg3d(G, device)
    used, kernel = _choose_method(method, device, folded, int(np.prod(shape_zyx)))
    plane_kernel = kernel if used == "kernel" else None
    role_of = {axis: role for role, axis in enumerate(roles)}  # 0 section, 1 row, 2 column
    by_pair: dict[tuple[int, int], list[int]] = {}
    for p, (au, av) in enumerate(PLANE_AXES):
        by_pair.setdefault(tuple(sorted((role_of[au], role_of[av]))), []).append(p)

    def term(pair: tuple[int, int]) -> PlaneRows | None:
        if pair not in by_pair:
            return None

        def features(i0: int, i1: int) -> torch.Tensor:  # [C, i1 - i0 of the slower role, the faster role]
            total = None
            for p in by_pair[pair]:
                au, av = PLANE_AXES[p]
                u, v = coords[au], coords[av]
                u, v = (u[i0:i1], v) if role_of[au] == pair[0] else (u, v[i0:i1])
                f = _plane_features(planes[0, p], u, v, align_corners=False, kernel=plane_kernel)  # [C, |v|, |u|]
                f = f if role_of[av] == pair[0] else f.transpose(1, 2)
                total = f.contiguous() if total is None else total.add_(f)
            return total

        return features

    return separable_filler(
        folded,
        term((1, 2)),
        term((0, 2)),
        term((0, 1)),
        shape_zyx,
        device,
        kernel if used == "kernel" else None,
        EG3D_SIGMA if value == "sigma" else None,
        tile_bytes,
    )


def _plane_coords(G: EG3DGenerator, axes: Sequence[torch.Tensor], device: torch.device) -> list[torch.Tensor]:
    """World coordinates (float64) -> plane units 2 p / box_warp, float32 on ``device``."""
    warp = 2.0 / float(G.rendering_kwargs["box_warp"])
    return [(a * warp).float().to(device) for a in axes]


@torch.no_grad()
def eg3d_density(
    G: EG3DGenerator,
    planes: torch.Tensor,
    axes: Axes,
    value: str = "raw",
    out: np.ndarray | None = None,
    method: str = "auto",
    progress: Progress | None = None,
    on_slab: Callable[[int, np.ndarray], None] | None = None,
    slab_voxels: int = DEFAULT_SLAB_VOXELS,
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> np.ndarray:
    """EG3D density on the grid axes (x [Rx], y [Ry], z [Rz], world units) -> V [Rx, Ry, Rz].

    planes [1, 3, 32, H, W]; value 'raw' (the decoder's density output) or 'sigma' (the marcher's
    softplus(raw - 1)); method 'auto' | 'kernel' | 'separable' (as ``extract_density``; 'naive' is
    ``eg3d_density_reference``). V[i, j, k] is the value at (x_i, y_j, z_k), held in [z, y, x]
    memory order (MRC order); ``out`` may be a transposed view of a memory-mapped MRC's data.
    """
    ax, ay, az = _axes_tensor(axes)
    out = _target(out, (len(ax), len(ay), len(az)))
    fill = _grid_filler(G, planes, _plane_coords(G, (ax, ay, az), planes.device), (2, 1, 0), value, method, tile_bytes)
    return stream_slabs(out, fill, planes.device, slab_voxels, progress, on_slab)


def model_order_filler(
    G: EG3DGenerator,
    planes: torch.Tensor,
    model_axes: Axes,
    value: str = "raw",
    method: str = "auto",
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> SlabFill:
    """The EG3D density on a grid of the model world (axes x, y, z) as a slab filler in its MRC order [z, y, x].

    Model point (x, y, z) is EG3D point (-z, y, x), so the model's z-sections are EG3D x-planes and
    the terms become: planes 1 (x, z) and 2 (z, x) vary over (section, column), plane 0 (x, y) over
    (section, row), and nothing over (row, column). Filling in this order lets ``stream_slabs`` write
    every slab in place or hand it to a sink at once, where ``eg3d_density``'s own order would need a
    transposing copy of the whole volume afterwards (0.9 s at 512^3, measured). Same values as
    ``eg3d_density`` to float32 rounding.
    """
    mx, my, mz = _axes_tensor(model_axes)
    coords = _plane_coords(G, (-mz, my, mx), planes.device)  # EG3D x, y, z of the sections, rows, columns
    return _grid_filler(G, planes, coords, (0, 1, 2), value, method, tile_bytes)


@torch.no_grad()
def eg3d_density_model_order(
    G: EG3DGenerator,
    planes: torch.Tensor,
    model_axes: Axes,
    value: str = "raw",
    out_zyx: np.ndarray | None = None,
    method: str = "auto",
    progress: Progress | None = None,
    on_slab: Callable[[int, np.ndarray], None] | None = None,
    slab_voxels: int = DEFAULT_SLAB_VOXELS,
    tile_bytes: int = DEFAULT_TILE_BYTES,
) -> np.ndarray:
    """``model_order_filler``'s volume: out_zyx [Rz, Ry, Rx] (model order; a new array when None), filled
    slab by slab along the model's z, each slab shown to ``on_slab`` as soon as it is done."""
    shape_zyx = tuple(len(a) for a in model_axes)[::-1]
    if out_zyx is None:
        out_zyx = np.empty(shape_zyx, np.float32)
    if tuple(out_zyx.shape) != shape_zyx or out_zyx.dtype != np.float32:
        raise ValueError(f"out_zyx must be float32 with shape {shape_zyx}, got {out_zyx.dtype} {tuple(out_zyx.shape)}")
    fill = model_order_filler(G, planes, model_axes, value, method, tile_bytes)
    stream_slabs(out_zyx.transpose(2, 1, 0), fill, planes.device, slab_voxels, progress, on_slab)
    return out_zyx


@torch.no_grad()
def eg3d_density_reference(
    G: EG3DGenerator,
    planes: torch.Tensor,
    axes: Axes,
    value: str = "raw",
    out: np.ndarray | None = None,
    chunk: int = REFERENCE_CHUNK,
) -> np.ndarray:
    """The shape-extraction procedure of EG3D: world points through ``G.sample_points``, ``chunk`` at a time.

    Same arguments and result layout as ``eg3d_density``. (The official script also recomputes the
    tri-planes for every chunk; here they are given, so this is a lower bound of its cost.)
    """
    planes = _check(planes)
    device = planes.device
    ax, ay, az = [a.float().to(device) for a in _axes_tensor(axes)]
    rx, ry, rz = len(ax), len(ay), len(az)
    out = _target(out, (rx, ry, rz))
    flat = torch.from_numpy(np.ascontiguousarray(np.empty((rz, ry, rx), np.float32))).view(-1)
    total = flat.numel()
    for n0 in range(0, total, chunk):
        n = torch.arange(n0, min(total, n0 + chunk), device=device)
        pts = torch.stack([ax[n % rx], ay[(n // rx) % ry], az[n // (rx * ry)]], dim=-1)
        sigma = G.sample_points(planes, pts.unsqueeze(0))["sigma"][0, :, 0]
        if value == "sigma":
            sigma = torch.nn.functional.softplus(sigma + EG3D_SIGMA[1])
        flat[n0 : n0 + n.numel()] = sigma.cpu()
    out.transpose(2, 1, 0)[...] = flat.view(rz, ry, rx).numpy()
    return out

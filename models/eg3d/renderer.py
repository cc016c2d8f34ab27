"""EG3D volume rendering: rays from 25-number cameras, tri-plane sampling, the two-pass sampler and the
"mip" ray marcher.

Conventions of the official EG3D renderer that differ from EpiGRAF's (``models/renderer.py``), all
kept here because the released checkpoints were trained through them:

- rays go through pixel centres (i + 0.5) / R in normalised image coordinates and the camera's
  intrinsics; directions are unit vectors, depths Euclidean;
- coarse depths are linspace(ray_start, ray_end, S) plus a uniform draw times the bin width, so a
  jittered sample may pass ``ray_end`` (and the official code jitters in eval mode too); with
  ``ray_start = ray_end = 'auto'`` the limits are each ray's entry and exit of the box_warp cube, and
  rays that miss it take the least and the greatest entry of those that hit (``auto_ray_limits``);
- the marcher averages colours, densities and depths of neighbouring samples, applies
  softplus(x - 1) and has no "infinite" last interval; depth is normalised by the weight total and
  clamped to the min/max sample depth over the whole batch;
- importance sampling smooths the marcher weights (max-pool 2, avg-pool 2, + 0.01), keeps
  ``weights[:, 1:-1]`` and inverts the CDF with ``searchsorted(right=True)``.

The two uniform draws (``u_stratified`` [B, R, S, 1], ``u_pdf`` [B*R, S_importance]) can be injected;
``EG3DDraws.deterministic()`` gives the jitter-free renders (zeros and an even linspace).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

# (coordinates [B, M, 3], directions [B, M, 3]) -> {"rgb": [B, M, C], "sigma": [B, M, 1]}
PointFn = Callable[[torch.Tensor, torch.Tensor], dict[str, torch.Tensor]]


def plane_axes() -> torch.Tensor:
    """[3, 3, 3] plane frames; projecting through their inverses reads plane 0 at (x, y), 1 at (x, z), 2 at (z, x)."""
    return torch.tensor(
        [
            [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            [[1, 0, 0], [0, 0, 1], [0, 1, 0]],
            [[0, 0, 1], [1, 0, 0], [0, 1, 0]],
        ],
        dtype=torch.float32,
    )


def sample_triplane(planes: torch.Tensor, coords: torch.Tensor, box_warp: float) -> torch.Tensor:
    """planes [B, 3, C, H, W], world coords [B, M, 3] -> per-plane features [B, 3, M, C].

    Coordinates are scaled by 2 / box_warp into grid_sample's [-1, 1] (bilinear, zeros outside,
    align_corners False); the first projected component indexes width, the second height.
    """
    b, n_planes, c, h, w = planes.shape
    m = coords.shape[1]
    coords = (2 / box_warp) * coords
    # (x, y), (x, z), (z, x): the projections through the inverse plane frames are plain axis picks.
    uv = torch.stack([coords[..., [0, 1]], coords[..., [0, 2]], coords[..., [2, 0]]], dim=1)
    grid = uv.reshape(b * n_planes, 1, m, 2)
    out = F.grid_sample(
        planes.reshape(b * n_planes, c, h, w),
        grid.to(planes.dtype),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=False,
    )
    return out.permute(0, 3, 2, 1).reshape(b, n_planes, m, c)


def camera_rays(
    cam2world: torch.Tensor, intrinsics: torch.Tensor, resolution: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 4, 4] cam2world, [B, 3, 3] normalised intrinsics -> origins, unit directions [B, R*R, 3].

    Ray index = row * R + col; u (x) follows the column, v (y) the row (OpenCV: y down).
    """
    b, m = cam2world.shape[0], resolution**2
    dev = cam2world.device
    origin = cam2world[:, :3, 3]
    fx, fy = intrinsics[:, 0, 0, None], intrinsics[:, 1, 1, None]
    cx, cy = intrinsics[:, 0, 2, None], intrinsics[:, 1, 2, None]
    sk = intrinsics[:, 0, 1, None]
    idx = torch.arange(resolution, dtype=torch.float32, device=dev) * (1.0 / resolution) + (0.5 / resolution)
    rows, cols = torch.meshgrid(idx, idx, indexing="ij")
    u = cols.reshape(1, -1).expand(b, -1)
    v = rows.reshape(1, -1).expand(b, -1)
    ones = torch.ones((b, m), device=dev)
    x = (u - cx + cy * sk / fy - sk * v / fy) / fx * ones
    y = (v - cy) / fy * ones
    cam_points = torch.stack([x, y, ones, torch.ones_like(ones)], dim=-1)
    world = torch.bmm(cam2world, cam_points.permute(0, 2, 1)).permute(0, 2, 1)[:, :, :3]
    dirs = F.normalize(world - origin[:, None, :], dim=2)
    return origin.unsqueeze(1).repeat(1, m, 1), dirs


@dataclass
class EG3DDraws:
    """The two uniform tensors one render consumes (None: drawn with ``torch.rand`` like the official code)."""

    u_stratified: torch.Tensor | None = None  # [B, R, S, 1]
    u_pdf: torch.Tensor | None = None  # [B*R, S_importance]
    det_pdf: bool = False  # u_pdf = linspace(0, 1, S_importance) for every ray

    def check(self, batch: int, num_rays: int, steps: int, importance: int) -> None:
        """Raise ValueError naming the draw whose shape does not fit this render."""
        want = {"u_stratified": (batch, num_rays, steps, 1), "u_pdf": (batch * num_rays, importance)}
        for name, shape in want.items():
            value = getattr(self, name)
            if value is not None and tuple(value.shape) != shape:
                raise ValueError(f"draws.{name} must have shape {list(shape)}, got {list(value.shape)}")

    @staticmethod
    def deterministic(batch: int, num_rays: int, depth_resolution: int) -> EG3DDraws:
        """No jitter: coarse depths on the linspace and evenly spaced CDF draws."""
        return EG3DDraws(torch.zeros(batch, num_rays, depth_resolution, 1), None, det_pdf=True)


RayLimit = float | torch.Tensor  # one distance for every ray, or one per ray [B, R, 1] (ray_start/ray_end 'auto')


def box_ray_limits(origins: torch.Tensor, dirs: torch.Tensor, box_side: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances [..., 1] of rays [..., 3] through the cube [-box_side/2, box_side/2]^3.

    The slab method; a ray that misses the cube gets -1 and -2, as the official renderer marks them.
    """
    half = box_side / 2
    inv = 1.0 / dirs
    t_a, t_b = (-half - origins) * inv, (half - origins) * inv
    entry = torch.minimum(t_a, t_b).amax(-1, keepdim=True)
    exit_ = torch.maximum(t_a, t_b).amin(-1, keepdim=True)
    hit = entry <= exit_
    return torch.where(hit, entry, -1.0), torch.where(hit, exit_, -2.0)


def auto_ray_limits(origins: torch.Tensor, dirs: torch.Tensor, box_side: float) -> tuple[torch.Tensor, torch.Tensor]:
    """EG3D's ``ray_start = ray_end = 'auto'``: each ray's entry and exit of the box_warp cube, [B, R, 1].

    Rays that miss the cube are given, as in the official renderer, the least entry of the rays that hit
    it as their start and the greatest entry (not exit) as their end; all rays of the call count.
    """
    start, end = box_ray_limits(origins.detach(), dirs.detach(), box_side)
    valid = end > start
    if bool(valid.any()):
        entries = start[valid]
        start = torch.where(valid, start, entries.min())
        end = torch.where(valid, end, entries.max())
    return start, end


def ray_limits(rendering_kwargs: dict, origins: torch.Tensor, dirs: torch.Tensor) -> tuple[RayLimit, RayLimit]:
    """The (ray_start, ray_end) a render uses: the config's numbers, or per-ray limits where both are 'auto'."""
    start, end = rendering_kwargs["ray_start"], rendering_kwargs["ray_end"]
    if start == "auto" and end == "auto":
        return auto_ray_limits(origins, dirs, float(rendering_kwargs["box_warp"]))
    return float(start), float(end)


def stratified_depths(
    batch: int, num_rays: int, ray_start: RayLimit, ray_end: RayLimit, steps: int, u: torch.Tensor | None, device=None
) -> torch.Tensor:
    """[B, R, S, 1] coarse depths: linspace + u * (end - start) / (S - 1), per ray when start/end are [B, R, 1]."""
    if isinstance(ray_start, torch.Tensor):
        fractions = (torch.arange(steps, dtype=torch.float32, device=ray_start.device) / (steps - 1)).view(1, 1, -1, 1)
        span = (ray_end - ray_start).unsqueeze(2)  # [B, R, 1, 1]
        depths = ray_start.unsqueeze(2) + fractions * span
        step = span / (steps - 1)
    else:
        depths = torch.linspace(ray_start, ray_end, steps, device=device).reshape(1, 1, steps, 1)
        depths = depths.repeat(batch, num_rays, 1, 1)
        step = (ray_end - ray_start) / (steps - 1)
    if u is None:
        u = torch.rand_like(depths)
    return depths + u.to(depths) * step


def march(
    colors: torch.Tensor, densities: torch.Tensor, depths: torch.Tensor, white_back: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Composite [B, R, N, C] colours, [B, R, N, 1] raw densities at [B, R, N, 1] depths.

    Returns (rgb in [-1, 1]-scaled units [B, R, C], depth [B, R, 1], weights [B, R, N-1, 1]).
    """
    deltas = depths[:, :, 1:] - depths[:, :, :-1]
    colors_mid = (colors[:, :, :-1] + colors[:, :, 1:]) / 2
    densities_mid = (densities[:, :, :-1] + densities[:, :, 1:]) / 2
    depths_mid = (depths[:, :, :-1] + depths[:, :, 1:]) / 2
    sigma = F.softplus(densities_mid - 1)
    alpha = 1 - torch.exp(-(sigma * deltas))
    shifted = torch.cat([torch.ones_like(alpha[:, :, :1]), 1 - alpha + 1e-10], -2)
    weights = alpha * torch.cumprod(shifted, -2)[:, :, :-1]
    rgb = torch.sum(weights * colors_mid, -2)
    total = weights.sum(2)
    depth = torch.sum(weights * depths_mid, -2) / total
    depth = torch.nan_to_num(depth, float("inf"))
    depth = torch.clamp(depth, torch.min(depths), torch.max(depths))
    if white_back:
        rgb = rgb + 1 - total
    return rgb * 2 - 1, depth, weights


def sample_pdf(bins: torch.Tensor, weights: torch.Tensor, n: int, u: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Inverse-CDF samples [M, n] from bin edges [M, K+1] and weights [M, K] at uniforms u [M, n]."""
    m, k = weights.shape
    weights = weights + eps
    pdf = weights / torch.sum(weights, -1, keepdim=True)
    cdf = torch.cumsum(pdf, -1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], -1)
    u = u.to(cdf).contiguous()
    inds = torch.searchsorted(cdf, u, right=True)
    both = torch.stack([torch.clamp_min(inds - 1, 0), torch.clamp_max(inds, k)], -1).view(m, 2 * n)
    cdf_g = torch.gather(cdf, 1, both).view(m, n, 2)
    bins_g = torch.gather(bins, 1, both).view(m, n, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    return bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])


def importance_depths(depths: torch.Tensor, weights: torch.Tensor, n: int, draws: EG3DDraws) -> torch.Tensor:
    """[B, R, S, 1] coarse depths and marcher weights [B, R, S-1, 1] -> [B, R, n, 1] fine depths."""
    with torch.no_grad():
        b, r, s, _ = depths.shape
        z = depths.reshape(b * r, s)
        w = weights.reshape(b * r, 1, -1).float()
        w = F.avg_pool1d(F.max_pool1d(w, 2, 1, padding=1), 2, 1).reshape(b * r, -1) + 0.01
        mids = 0.5 * (z[:, :-1] + z[:, 1:])
        if draws.u_pdf is not None:
            u = draws.u_pdf.reshape(b * r, n)
        elif draws.det_pdf:
            u = torch.linspace(0, 1, n, device=z.device).expand(b * r, n)
        else:
            u = torch.rand(b * r, n, device=z.device)
        return sample_pdf(mids, w[:, 1:-1], n, u).detach().reshape(b, r, n, 1)


def render_rays(
    point_fn: PointFn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    ray_start: RayLimit,
    ray_end: RayLimit,
    depth_resolution: int,
    depth_resolution_importance: int,
    draws: EG3DDraws | None = None,
    white_back: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Two-pass render of rays [B, R, 3] between ray_start and ray_end (numbers, or [B, R, 1] per ray).

    Returns (features [B, R, C] in the marcher's x2-1 units, depth [B, R, 1], weight totals [B, R, 1]).
    """
    draws = draws or EG3DDraws()
    b, r, _ = origins.shape

    def evaluate(depths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = depths.shape[2]
        pts = (origins.unsqueeze(-2) + depths * dirs.unsqueeze(-2)).reshape(b, -1, 3)
        d = dirs.unsqueeze(-2).expand(-1, -1, n, -1).reshape(b, -1, 3)
        out = point_fn(pts, d)
        return out["rgb"].reshape(b, r, n, -1), out["sigma"].reshape(b, r, n, 1)

    z = stratified_depths(b, r, ray_start, ray_end, depth_resolution, draws.u_stratified, origins.device)
    colors, densities = evaluate(z)
    if depth_resolution_importance > 0:
        _, _, weights = march(colors, densities, z, white_back)
        z_fine = importance_depths(z, weights, depth_resolution_importance, draws)
        colors_f, densities_f = evaluate(z_fine)
        z = torch.cat([z, z_fine], dim=-2)
        colors = torch.cat([colors, colors_f], dim=-2)
        densities = torch.cat([densities, densities_f], dim=-2)
        _, order = torch.sort(z, dim=-2)
        z = torch.gather(z, -2, order)
        colors = torch.gather(colors, -2, order.expand(-1, -1, -1, colors.shape[-1]))
        densities = torch.gather(densities, -2, order)
    rgb, depth, weights = march(colors, densities, z, white_back)
    return rgb, depth, weights.sum(2)

"""Volumetric rendering: stratified samples, importance sampling and alpha compositing.

The renderer knows nothing about networks: it calls ``field_fn(points [B, N, 3]) -> [B, N, C+1]``
(raw colour features, then raw density). It reproduces the official EpiGRAF renderer: S coarse
depths in linspace(near, far) jittered within their bins, S importance samples drawn from the
coarse weights, all 2S sorted and composited together. Random draws happen once per image, in
the official order (perturbation uniforms [B, R, S, 1], then pdf uniforms [B*R, S]); they can
be injected, seeded through a ``torch.Generator``, or switched off (``deterministic=True``).
The density activation (``density_activation``: softplus or relu of raw + shift) is defined here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

FieldFn = Callable[[torch.Tensor], torch.Tensor]
# (origins [B, R, 3], directions [B, R, 3]) -> background colour [B, R, C], added behind the scene
# weighted by the remaining transmittance.
BackgroundFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def density_activation(raw: torch.Tensor, density_shift: float = 0.0, clamp_mode: str = "softplus") -> torch.Tensor:
    """sigma = softplus(raw + shift) (or relu) as the official integrator applies it."""
    x = raw + density_shift
    if clamp_mode == "softplus":
        return F.softplus(x)
    if clamp_mode == "relu":
        return F.relu(x)
    raise ValueError(f"unknown clamp_mode {clamp_mode!r}; expected 'softplus' or 'relu'")


@dataclass
class RenderOptions:
    """How rays are sampled and composited (defaults: the FFHQ configuration).

    These defaults are the one definition: ``GeneratorConfig`` (and through it training) reads them.
    """

    num_steps: int = 48
    ray_start: float = 0.88
    ray_end: float = 1.12
    density_shift: float = 0.0
    clamp_mode: str = "softplus"
    white_back: bool = False
    last_back: bool = False
    use_inf_depth: bool = True
    nerf_noise_std: float = 0.0


def stratify(z_vals: torch.Tensor, u: torch.Tensor | None) -> torch.Tensor:
    """Jitter each depth uniformly within its bin (bounded by midpoints to its neighbours).

    z_vals, u: [..., S, 1]. With u None the depths are returned unchanged.
    """
    if u is None:
        return z_vals
    mids = 0.5 * (z_vals[..., 1:, :] + z_vals[..., :-1, :])
    lower = torch.cat([z_vals[..., :1, :], mids], dim=-2)
    upper = torch.cat([mids, z_vals[..., -1:, :]], dim=-2)
    return lower + (upper - lower) * u


def composite(
    raw: torch.Tensor,
    z: torch.Tensor,
    opts: RenderOptions,
    white_back: bool = False,
    last_back: bool = False,
    noise: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Alpha-composite raw samples along rays.

    raw: [B, R, N, C+1] (density last), z: [B, R, N, 1]. Returns rgb [B, R, C], depth [B, R, 1]
    (sum w z, not normalised), weights [B, R, N, 1], alpha (sum of weights) [B, R, 1] and the
    exclusive transmittance at the last sample [B, R, 1].
    """
    colors, sigma_raw = raw[..., :-1], raw[..., -1:]
    deltas = z[..., 1:, :] - z[..., :-1, :]
    last = 1e10 if opts.use_inf_depth else 1e-3
    deltas = torch.cat([deltas, torch.full_like(deltas[..., :1, :], last)], dim=-2)
    if noise is not None:
        sigma_raw = sigma_raw + noise
    sigmas = density_activation(sigma_raw, opts.density_shift, opts.clamp_mode)
    alphas = 1 - torch.exp(-deltas * sigmas)
    shifted = torch.cat([torch.ones_like(alphas[..., :1, :]), 1 - alphas + 1e-10], dim=-2)
    transmittance = torch.cumprod(shifted, dim=-2)
    weights = alphas * transmittance[..., :-1, :]
    weights_sum = weights.sum(dim=-2)
    if last_back:
        weights = weights.clone()
        weights[..., -1, :] += 1 - weights_sum
    rgb = (weights * colors).sum(dim=-2)
    depth = (weights * z).sum(dim=-2)
    if white_back:
        rgb = rgb + 1 - weights_sum
    return {
        "rgb": rgb,
        "depth": depth,
        "weights": weights,
        "alpha": weights.sum(dim=-2),
        "final_transmittance": transmittance[..., -2, :],
    }


def sample_pdf(
    bins: torch.Tensor, weights: torch.Tensor, num_samples: int, u: torch.Tensor | None, eps: float = 1e-5
) -> torch.Tensor:
    """Inverse-transform sampling of a piecewise-constant pdf.

    bins: [M, K+1] bin edges, weights: [M, K], u: [M, num_samples] uniforms (None: evenly spaced,
    deterministic). Returns [M, num_samples] samples (detached).
    """
    weights = weights + eps
    pdf = weights / weights.sum(dim=-1, keepdim=True)
    cdf = torch.cumsum(pdf, dim=-1)
    cdf = torch.cat([torch.zeros_like(cdf[:, :1]), cdf], dim=-1)
    if u is None:
        u = torch.linspace(0, 1, num_samples, device=bins.device, dtype=bins.dtype).expand(bins.shape[0], -1)
    u = u.contiguous()
    idx = torch.searchsorted(cdf.detach().contiguous(), u)
    below = (idx - 1).clamp_min(0)
    above = idx.clamp_max(weights.shape[1])
    both = torch.stack([below, above], dim=-1).reshape(bins.shape[0], -1)
    cdf_g = torch.gather(cdf, 1, both).reshape(bins.shape[0], num_samples, 2)
    bins_g = torch.gather(bins, 1, both).reshape(bins.shape[0], num_samples, 2)
    denom = cdf_g[..., 1] - cdf_g[..., 0]
    denom = torch.where(denom < eps, torch.ones_like(denom), denom)
    samples = bins_g[..., 0] + (u - cdf_g[..., 0]) / denom * (bins_g[..., 1] - bins_g[..., 0])
    return samples.detach()


@dataclass
class RayDraws:
    """The uniforms one rendering consumes: perturb [B, R, S, 1] and pdf [B, R, S] (None = off)."""

    perturb: torch.Tensor | None
    pdf: torch.Tensor | None

    @staticmethod
    def draw(
        batch: int,
        num_rays: int,
        num_steps: int,
        device: torch.device | str,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> RayDraws:
        """Draw both sets in the official order (deterministic: neither)."""
        if deterministic:
            return RayDraws(None, None)
        perturb = torch.rand((batch, num_rays, num_steps, 1), device=device, generator=generator)
        pdf = torch.rand((batch * num_rays, num_steps), device=device, generator=generator)
        return RayDraws(perturb, pdf.reshape(batch, num_rays, num_steps))


def render_rays(
    field_fn: FieldFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    opts: RenderOptions,
    draws: RayDraws,
    generator: torch.Generator | None = None,
    background_fn: BackgroundFn | None = None,
) -> dict[str, torch.Tensor]:
    """Render rays [B, R, 3] with the hierarchical sampler; see ``composite`` for the outputs.

    With ``background_fn`` the output also holds the two layers, ``foreground`` (rgb before the
    background) and ``background`` (its colour [B, R, C], unweighted); rgb is foreground +
    background * final_transmittance.
    """
    b, r, _ = origins.shape
    s = opts.num_steps
    z = torch.linspace(opts.ray_start, opts.ray_end, s, device=origins.device, dtype=origins.dtype)
    z = z.reshape(1, 1, s, 1).expand(b, r, s, 1)
    z = stratify(z, draws.perturb)

    def evaluate(depths: torch.Tensor) -> torch.Tensor:
        pts = origins.unsqueeze(2) + directions.unsqueeze(2) * depths  # [B, R, N, 3]
        out = field_fn(pts.reshape(b, -1, 3))
        return out.reshape(b, r, depths.shape[2], -1)

    def nerf_noise(like: torch.Tensor) -> torch.Tensor | None:
        if opts.nerf_noise_std <= 0:
            return None
        return torch.randn(like.shape, device=like.device, generator=generator) * opts.nerf_noise_std

    coarse = evaluate(z)
    coarse_w = composite(coarse, z, opts, noise=nerf_noise(coarse[..., -1:]))["weights"] + 1e-5
    z_flat = z.reshape(b * r, s)
    mids = 0.5 * (z_flat[:, 1:] + z_flat[:, :-1])
    u_pdf = draws.pdf.reshape(b * r, s) if draws.pdf is not None else None
    fine_z = sample_pdf(mids, coarse_w.reshape(b * r, s)[:, 1:-1], s, u_pdf).reshape(b, r, s, 1)
    fine = evaluate(fine_z)

    all_z = torch.cat([fine_z, z], dim=-2)
    all_raw = torch.cat([fine, coarse], dim=-2)
    all_z, order = torch.sort(all_z, dim=-2)
    all_raw = torch.gather(all_raw, -2, order.expand(-1, -1, -1, all_raw.shape[-1]))
    out = composite(
        all_raw,
        all_z,
        opts,
        white_back=opts.white_back,
        last_back=opts.last_back,
        noise=nerf_noise(all_raw[..., -1:]),
    )
    if background_fn is not None:
        # Both layers are kept (no copies) so a caller can show either alone; alpha, depth and weights
        # are the foreground's only: the background never changes them.
        out["foreground"] = out["rgb"]
        out["background"] = background_fn(origins, directions)
        out["rgb"] = out["foreground"] + out["background"] * out["final_transmittance"]
    return out


def render_rays_chunked(
    field_fn: FieldFn,
    origins: torch.Tensor,
    directions: torch.Tensor,
    opts: RenderOptions,
    draws: RayDraws,
    chunk_rays: int | None = 16384,
    generator: torch.Generator | None = None,
    background_fn: BackgroundFn | None = None,
    keep: tuple[str, ...] = ("rgb", "depth", "alpha", "final_transmittance"),
) -> dict[str, torch.Tensor]:
    """``render_rays`` over chunks of rays so memory stays bounded at any image size.

    All random draws are made for the whole image first, so the result equals the unchunked one.
    """
    r = origins.shape[1]
    if chunk_rays is None or chunk_rays >= r:
        out = render_rays(field_fn, origins, directions, opts, draws, generator, background_fn)
        return {k: out[k] for k in keep}
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in keep}
    for start in range(0, r, chunk_rays):
        sl = slice(start, start + chunk_rays)
        sub = RayDraws(
            draws.perturb[:, sl] if draws.perturb is not None else None,
            draws.pdf[:, sl] if draws.pdf is not None else None,
        )
        out = render_rays(field_fn, origins[:, sl], directions[:, sl], opts, sub, generator, background_fn)
        for k in keep:
            parts[k].append(out[k])
    return {k: torch.cat(v, dim=1) for k, v in parts.items()}

"""Patch sampling for patch-wise GAN training, and cutting real patches with the rays' geometry.

A patch is a square window of the image given by a scale s (side length as a fraction of the image)
and offsets (o_x, o_y) in [0, 1 - s] (o_y counts from the image *bottom*, because NDC y points up).
Fake patches are rendered with rays through the NDC points ``(x + 1) s - 1 + 2 o`` of the patch
pixel grid (``models.cameras.apply_patch``); real patches are bilinear samples of the real image at
exactly the same points, so a rendered patch and the patch cut from a rendered full image agree
pixel for pixel.

Scales follow the official schedule: s = Beta(alpha, beta) * (max - min) + min with beta annealed
linearly from ``beta_val_start`` (almost all mass at s = 1: whole, low-resolution images) to
``beta_val_end`` over ``anneal_kimg``. One scale and one offset pair is shared by each group of
``group_size`` consecutive samples (the official code does this for the minibatch-std layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from epigraf_tools.models.cameras import apply_patch, ndc_pixel_grid

DISTRIBUTIONS = ("beta", "uniform", "discrete_uniform")


def linear_schedule(step: float, val_start: float, val_end: float, period: float) -> float:
    """val_start -> val_end linearly over [0, period], constant outside (the official helper's rule)."""
    if step >= period:
        return val_end
    if step <= 0:
        return val_start
    return val_start + (val_end - val_start) * step / period


@dataclass
class PatchSampler:
    """Draws patch parameters; ``update(cur_kimg)`` advances the annealing schedule.

    ``min_scale`` defaults to ``resolution / image_resolution``. For 'uniform' and
    'discrete_uniform' the lower bound itself anneals from ``max_scale`` to ``min_scale`` over
    ``anneal_kimg`` (as the official code); for 'beta' the beta parameter anneals.
    """

    resolution: int = 64
    image_resolution: int = 512
    min_scale: float | None = None
    max_scale: float = 1.0
    distribution: str = "beta"
    alpha: float = 1.0
    beta_val_start: float = 0.001
    beta_val_end: float = 0.8
    anneal_kimg: float = 10000.0
    group_size: int = 4
    discrete_support: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"patch distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.distribution!r}")
        if self.resolution > self.image_resolution:
            raise ValueError(
                f"patch resolution {self.resolution} is larger than the image resolution {self.image_resolution}"
            )
        if self.min_scale is None:
            self.min_scale = self.resolution / self.image_resolution
        if not 0 < self.min_scale <= self.max_scale <= 1:
            raise ValueError(f"need 0 < min_scale <= max_scale <= 1, got {self.min_scale} and {self.max_scale}")
        if self.distribution == "discrete_uniform" and not self.discrete_support:
            raise ValueError("the 'discrete_uniform' patch distribution needs discrete_support")
        self.update(0.0)

    def update(self, cur_kimg: float) -> None:
        """Set the current beta (or current lower scale bound) for training progress ``cur_kimg``."""
        if self.distribution == "beta":
            self.beta = linear_schedule(cur_kimg, self.beta_val_start, self.beta_val_end, self.anneal_kimg)
            self.current_min_scale = self.min_scale
        else:
            self.beta = float("nan")
            self.current_min_scale = linear_schedule(cur_kimg, self.max_scale, self.min_scale, self.anneal_kimg)

    def sample_scales(self, num: int, rng: np.random.RandomState) -> np.ndarray:
        """[num] patch scales under the current schedule state."""
        lo, hi = self.current_min_scale, self.max_scale
        if self.distribution == "beta":
            return rng.beta(self.alpha, self.beta, size=num) * (hi - lo) + lo
        if self.distribution == "uniform":
            return rng.rand(num) * (hi - lo) + lo
        support = [s for s in self.discrete_support if lo <= s <= hi] or [hi]
        return rng.choice(support, size=num, replace=True).astype(np.float64)

    def sample(
        self,
        batch_size: int,
        rng: np.random.RandomState,
        generator: torch.Generator | None = None,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """{'scales': [B, 2], 'offsets': [B, 2]} (float32), shared by groups of consecutive samples.

        Scales come from ``rng`` (numpy, as the official code), offsets from ``generator`` (CPU
        torch generator), so both can be seeded for exact resumption and multi-rank equivalence.
        """
        g = max(1, min(self.group_size, batch_size))
        num_groups = -(-batch_size // g)
        scales = torch.from_numpy(self.sample_scales(num_groups, rng)).float()
        scales = torch.stack([scales, scales], dim=1)
        offsets = torch.rand(scales.shape, generator=generator) * (1.0 - scales)
        scales = scales.repeat_interleave(g, dim=0)[:batch_size]
        offsets = offsets.repeat_interleave(g, dim=0)[:batch_size]
        return {"scales": scales.to(device), "offsets": offsets.to(device)}


def patch_sampling_grid(patch_params: dict[str, torch.Tensor], resolution: int) -> torch.Tensor:
    """``grid_sample`` coordinates [B, r, r, 2] of a patch's pixel centres (same points as its rays)."""
    scales, offsets = patch_params["scales"], patch_params["offsets"]
    ndc = ndc_pixel_grid(resolution, resolution, device=scales.device, dtype=scales.dtype)
    pts = apply_patch(ndc, scales, offsets)  # [B, r*r, 2] in NDC, y up
    pts = torch.stack([pts[..., 0], -pts[..., 1]], dim=-1)  # grid_sample's y points down
    return pts.reshape(scales.shape[0], resolution, resolution, 2)


def extract_patches(images: torch.Tensor, patch_params: dict[str, torch.Tensor], resolution: int) -> torch.Tensor:
    """Cut patches from images [B, C, H, W] -> [B, C, r, r] (bilinear, align_corners, no low-pass).

    A scale-1 patch is a bilinear point sampling of the full image, as in the official code.
    """
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(f"patch extraction needs square images, got {tuple(images.shape[-2:])}")
    grid = patch_sampling_grid(patch_params, resolution).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

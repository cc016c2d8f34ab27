"""The EpiGRAF objective: non-saturating logistic GAN loss on patches, lazy R1, start-up blur.

Phases (as in StyleGAN2 / the official EpiGRAF loop):
- ``Gall``: render fake patches with gradients, G minimises softplus(-D(fake)).
- ``Dmain``: D minimises softplus(D(fake)) + softplus(-D(real)); fakes rendered without gradients
  (and with ``update_emas`` so G's running w average moves).
- ``Dreg``: every ``D_reg_interval`` steps, R1 = gamma / 2 * ||dD(real)/d real||^2 on real
  patches; the gradient is taken with respect to the patch *before* the blur, and the loop passes
  ``gain = interval`` (lazy regularisation).
During the first ``blur_fade_kimg`` kimg both real and fake patches are blurred with a Gaussian whose
sigma fades linearly from ``blur_init_sigma`` to 0; its taps are 2^-(t/sigma)^2 (base 2, not e).
With an ``augment`` pipeline (ADA, training/augment.py), every D input, real or fake, is augmented
after the blur: patch -> blur -> augment -> D. R1 still differentiates with respect to the real
patch before both, so its gradient (and double backward) runs through the augmentation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .augment import AdaptiveAugment
from .patches import PatchSampler, extract_patches, linear_schedule

PHASES = ("Gall", "Dmain", "Dreg")


def blur_sigma(cur_nimg: float, blur_init_sigma: float, blur_fade_kimg: float) -> float:
    """Blur strength at ``cur_nimg`` images: linear fade from ``blur_init_sigma`` to 0."""
    if blur_fade_kimg <= 0:
        return 0.0
    return max(1.0 - cur_nimg / (blur_fade_kimg * 1e3), 0.0) * blur_init_sigma


def blur_kernel(sigma: float, device: torch.device | str = "cpu") -> torch.Tensor | None:
    """Normalised 1-D taps 2^-(t/sigma)^2 for integer t in [-floor(3 sigma), floor(3 sigma)].

    Returns None when floor(3 sigma) == 0 (no blur), as the official code skips it then.
    """
    size = math.floor(sigma * 3)
    if size <= 0:
        return None
    t = torch.arange(-size, size + 1, device=device, dtype=torch.float32)
    f = torch.exp2(-(t / sigma).square())
    return f / f.sum()


def blur_images(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [B, C, H, W] with zero 'same' padding (identity when sigma is small)."""
    f = blur_kernel(sigma, images.device)
    if f is None:
        return images
    c = images.shape[1]
    n = f.numel()
    fx = f.to(images.dtype).view(1, 1, 1, n).repeat(c, 1, 1, 1)
    fy = f.to(images.dtype).view(1, 1, n, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(images, fx, padding=(0, n // 2), groups=c)
    return F.conv2d(x, fy, padding=(n // 2, 0), groups=c)


def r1_penalty(logits: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
    """||d sum(logits) / d inputs||^2 per sample [B] (create_graph, so it can be minimised)."""
    (grads,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[inputs], create_graph=True, only_inputs=True)
    return grads.square().sum(dim=[1, 2, 3])


class EpiGRAFLoss:
    """Computes the losses of one phase on one chunk and accumulates gradients.

    G must be an ``epigraf_tools.models.Generator`` (train mode renders patches with nerf noise),
    D a ``Discriminator`` on ``patch_sampler.resolution`` patches; ``augment`` (optional) is applied
    to every D input after the blur.
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        patch_sampler: PatchSampler,
        r1_gamma: float = 0.1,
        blur_init_sigma: float = 10.0,
        blur_fade_kimg: float = 200.0,
        gpc_spoof_p_end: float = 0.5,
        gpc_spoof_kimg: float = 1000.0,
        patch_enabled: bool = True,
        augment: AdaptiveAugment | None = None,
    ) -> None:
        self.G = G
        self.D = D
        self.patch_sampler = patch_sampler
        self.r1_gamma = r1_gamma
        self.blur_init_sigma = blur_init_sigma
        self.blur_fade_kimg = blur_fade_kimg
        self.gpc_spoof_p_end = gpc_spoof_p_end
        self.gpc_spoof_kimg = gpc_spoof_kimg
        self.patch_enabled = patch_enabled
        self.augment = augment
        self.progressive_update(0.0)

    def progressive_update(self, cur_kimg: float) -> None:
        """Advance the patch-scale annealing and the GPC spoofing probability."""
        self.patch_sampler.update(cur_kimg)
        self.gpc_spoof_p = linear_schedule(cur_kimg, 1.0, self.gpc_spoof_p_end, self.gpc_spoof_kimg)

    # ------------------------------------------------------------------ pieces
    def sample_patches(self, batch: int, rng: np.random.RandomState, gen: torch.Generator, device) -> dict | None:
        if not self.patch_enabled:
            return None
        return self.patch_sampler.sample(batch, rng, gen, device)

    def run_G(
        self,
        z: torch.Tensor,
        c: torch.Tensor,
        camera_angles: torch.Tensor,
        camera_angles_cond: torch.Tensor | None,
        patch_params: dict[str, torch.Tensor] | None,
        update_emas: bool = False,
    ) -> torch.Tensor:
        """Fake patches [B, 3, r, r] rendered at the patch resolution (full images without patches)."""
        res = self.patch_sampler.resolution if self.patch_enabled else None
        return self.G(
            z,
            c if c.shape[1] > 0 else None,
            camera_angles,
            camera_angles_cond=camera_angles_cond,
            update_emas=update_emas,
            noise_mode="random",
            resolution=res,
            patch_params=patch_params,
        )

    def run_D(
        self,
        img: torch.Tensor,
        c: torch.Tensor,
        blur: float,
        patch_params: dict[str, torch.Tensor] | None,
        camera_angles: torch.Tensor,
        aug_generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """D's logits [B, 1] for patches: blurred, then augmented (when an augmentation pipeline is set)."""
        img = blur_images(img, blur)
        if self.augment is not None:
            img = self.augment(img, generator=aug_generator)
        return self.D(img, c if c.shape[1] > 0 else None, patch_params=patch_params, camera_angles=camera_angles)

    # ------------------------------------------------------------------ one phase on one chunk
    def accumulate_gradients(
        self,
        phase: str,
        real_img: torch.Tensor,
        real_c: torch.Tensor,
        real_camera_angles: torch.Tensor,
        gen_z: torch.Tensor,
        gen_c: torch.Tensor,
        gen_camera_angles: torch.Tensor,
        gen_camera_angles_cond: torch.Tensor | None,
        gain: float,
        cur_nimg: float,
        rng: np.random.RandomState,
        generator: torch.Generator,
        aug_generator: torch.Generator | None = None,
    ) -> dict[str, torch.Tensor]:
        """Backpropagate ``gain * mean loss`` of ``phase`` and return detached per-sample statistics.

        real_img: [B, 3, H, W] full images in [-1, 1]; gen_z [B, z_dim]; labels [B, c_dim];
        angles [B, 3]. ``rng``/``generator`` drive the patch draws (fake first, then real);
        ``aug_generator`` the augmentation draws (a separate stream, so that turning augmentation on
        leaves the patch draws as they were).
        """
        if phase not in PHASES:
            raise ValueError(f"unknown phase {phase!r}; expected one of {PHASES}")
        device = gen_z.device
        blur = blur_sigma(cur_nimg, self.blur_init_sigma, self.blur_fade_kimg)
        stats: dict[str, torch.Tensor] = {}

        if phase == "Gall":
            patch = self.sample_patches(gen_z.shape[0], rng, generator, device)
            fake = self.run_G(gen_z, gen_c, gen_camera_angles, gen_camera_angles_cond, patch)
            logits = self.run_D(fake, gen_c, blur, patch, gen_camera_angles, aug_generator)
            loss = F.softplus(-logits)
            loss.mean().mul(gain).backward()
            stats["Loss/scores/fake"] = logits.detach()
            stats["Loss/G/loss"] = loss.detach()
            return stats

        if phase == "Dmain":
            patch = self.sample_patches(gen_z.shape[0], rng, generator, device)
            with torch.no_grad():
                fake = self.run_G(gen_z, gen_c, gen_camera_angles, gen_camera_angles_cond, patch, update_emas=True)
            logits_fake = self.run_D(fake, gen_c, blur, patch, gen_camera_angles, aug_generator)
            loss_fake = F.softplus(logits_fake)
            loss_fake.mean().mul(gain).backward()
            stats["Loss/scores/fake"] = logits_fake.detach()

        real, patch = self._real_patches(real_img, rng, generator)
        real = real.detach().requires_grad_(phase == "Dreg")
        logits_real = self.run_D(real, real_c, blur, patch, real_camera_angles, aug_generator)
        stats["Loss/scores/real"] = logits_real.detach()
        if phase == "Dmain":
            loss_real = F.softplus(-logits_real)
            loss_real.mean().mul(gain).backward()
            stats["Loss/D/loss"] = (loss_fake + loss_real).detach()
        else:
            penalty = r1_penalty(logits_real, real)
            loss_r1 = penalty * (self.r1_gamma / 2)
            loss_r1.mean().mul(gain).backward()
            stats["Loss/D/r1_penalty"] = penalty.detach()
            stats["Loss/D/reg"] = loss_r1.detach()
        return stats

    def _real_patches(self, real_img: torch.Tensor, rng: np.random.RandomState, generator: torch.Generator):
        if not self.patch_enabled:
            return real_img, None
        patch = self.patch_sampler.sample(real_img.shape[0], rng, generator, real_img.device)
        return extract_patches(real_img, patch, self.patch_sampler.resolution), patch

    def state_dict(self) -> dict[str, Any]:
        return {"gpc_spoof_p": self.gpc_spoof_p, "beta": self.patch_sampler.beta}

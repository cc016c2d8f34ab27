"""Reconstruction losses for inversion: pixel L2/L1, an image pyramid, and LPIPS when it is at hand.

LPIPS needs the ``lpips`` package (extra ``[lpips]``) AND its backbone's ImageNet weights already in
torch's hub cache: inversion never downloads anything, so without both it runs on the pixel and
pyramid terms alone and says so (``LossSetup.lpips_note``).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .errors import EpigrafError

# torchvision's file name of the AlexNet weights that ``lpips.LPIPS(net="alex")`` loads.
LPIPS_BACKBONE_FILE = "alexnet-owt-7be5be79.pth"


@dataclass(frozen=True)
class LossWeights:
    """Weights of the reconstruction terms (0 switches a term off); ``levels`` = pyramid depth."""

    l2: float = 1.0
    l1: float = 0.0
    pyramid: float = 1.0
    levels: int = 3
    lpips: float = 1.0  # used only when LPIPS is available

    def validate(self) -> LossWeights:
        for name in ("l2", "l1", "pyramid", "lpips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise EpigrafError(f"loss weight {name} must be a finite number >= 0, got {value!r}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or not 1 <= self.levels <= 8:
            raise EpigrafError(f"pyramid levels must be an integer in [1, 8], got {self.levels!r}")
        if self.l2 == self.l1 == self.pyramid == 0:
            raise EpigrafError("at least one of the l2, l1 and pyramid loss weights must be positive")
        return self


def pyramid_loss(x: torch.Tensor, y: torch.Tensor, levels: int) -> torch.Tensor:
    """Mean squared error of the 2x, 4x, ... average-pooled images [B, 3, H, W] (coarse shape first).

    The coarse levels give the latent a smooth gradient towards the right silhouette and colour
    before the fine pixels matter; level 0 (full size) is the plain L2 term, not repeated here.
    """
    total = x.new_zeros(())
    for _ in range(1, levels):
        if min(x.shape[-2:]) < 2:
            break
        x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        total = total + F.mse_loss(x, y)
    return total


def lpips_available() -> tuple[bool, str]:
    """(usable, why not): the package is importable and its AlexNet weights are cached locally."""
    if importlib.util.find_spec("lpips") is None:
        return False, "LPIPS not used: the lpips package is not installed (pip install 'epigraf-tools[lpips]')"
    weights = Path(torch.hub.get_dir()) / "checkpoints" / LPIPS_BACKBONE_FILE
    if not weights.is_file():
        return False, f"LPIPS not used: its backbone weights are not cached at {weights} (inversion never downloads)"
    return True, "LPIPS used (AlexNet)"


@dataclass
class LossSetup:
    """The loss function of one inversion and a line saying whether LPIPS takes part."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    lpips_used: bool
    lpips_note: str


def build_loss(weights: LossWeights, device: torch.device) -> LossSetup:
    """loss(x, y) for images [B, 3, H, W] in [-1, 1]: weighted L2 + L1 + pyramid (+ LPIPS if available)."""
    weights = weights.validate()
    use_lpips, note = lpips_available() if weights.lpips > 0 else (False, "LPIPS not used: its weight is 0")
    perceptual = None
    if use_lpips:
        import lpips  # optional extra, imported only when its weights are present

        perceptual = lpips.LPIPS(net="alex", verbose=False).to(device).eval()
        for p in perceptual.parameters():
            p.requires_grad_(False)

    def loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        total = x.new_zeros(())
        if weights.l2:
            total = total + weights.l2 * F.mse_loss(x, y)
        if weights.l1:
            total = total + weights.l1 * F.l1_loss(x, y)
        if weights.pyramid:
            total = total + weights.pyramid * pyramid_loss(x, y, weights.levels)
        if perceptual is not None:
            total = total + weights.lpips * perceptual(x, y).mean()
        return total

    return LossSetup(loss, use_lpips, note)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1] (clamped; peak-to-peak 2, so the same as on [0, 1] images)."""
    mse = F.mse_loss(x.clamp(-1, 1).float(), y.clamp(-1, 1).float()).item()
    return float("inf") if mse == 0 else 10.0 * math.log10(4.0 / mse)

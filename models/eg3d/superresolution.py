"""EG3D's super-resolution heads: neural render (raw RGB + 32-channel features) -> final image.

EG3D renders at a low "neural" resolution and lifts the result with two StyleGAN2 synthesis blocks
in the skip architecture: the raw RGB is the starting image, each block adds its ToRGB output. The
blocks are driven by the generator's LAST w only (repeated for the three layers), always without
noise (the releases render with ``superresolution_noise_mode='none'``), and clamp their
convolutions at +-256 (the releases build them with fp16, which turns the clamp on; we compute in
fp32 but keep the clamp so results match). The inputs are first resized (bilinear, antialiased,
align_corners False) to the head's input resolution.

Variants (the official class names, so configs map one to one):

- SuperresolutionHybrid2X: 64 -> 128; a same-resolution block (128 ch), then an up block (64 ch);
  inputs resized when their size differs from 64 (train.py's choice for 128^2 datasets).
- SuperresolutionHybrid4X: 128 -> 256; same layout; inputs resized only when smaller than 128.
- SuperresolutionHybrid8X: 128 -> 512; two up blocks (128, 64 ch); resized when the size differs.
- SuperresolutionHybrid8XDC: 128 -> 512; two up blocks (256, 128 ch), no top-level filter buffer
  (what train.py picks for 512^2 datasets, e.g. the released ffhq512-128).

Parameter names are the official ``superresolution.*`` names with the prefix stripped, so the
official state loads with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..backbone import SynthesisBlock, SynthesisLayer, ToRGBLayer
from ..layers import setup_filter

# The official heads hard-code w_dim 512 and clamp +-256 whenever sr_num_fp16_res > 0 (every release).
SR_W_DIM = 512
SR_CONV_CLAMP = 256.0


@dataclass(frozen=True)
class SuperresolutionSpec:
    """Shape of one super-resolution variant."""

    img_resolution: int
    input_resolution: int
    block0_up: bool
    block_channels: tuple[int, int]
    resize_only_smaller: bool
    has_resample_filter: bool


SUPERRESOLUTION_VARIANTS: dict[str, SuperresolutionSpec] = {
    "SuperresolutionHybrid2X": SuperresolutionSpec(128, 64, False, (128, 64), False, True),
    "SuperresolutionHybrid4X": SuperresolutionSpec(256, 128, False, (128, 64), True, True),
    "SuperresolutionHybrid8X": SuperresolutionSpec(512, 128, True, (128, 64), False, True),
    "SuperresolutionHybrid8XDC": SuperresolutionSpec(512, 128, True, (256, 128), False, False),
}


def variant_name(name: str) -> str:
    """Accept the bare class name or the official dotted path (``training.superresolution.X``)."""
    short = name.rsplit(".", 1)[-1]
    if short not in SUPERRESOLUTION_VARIANTS:
        raise ValueError(
            f"unknown super-resolution module {name!r}; expected one of {', '.join(SUPERRESOLUTION_VARIANTS)}"
        )
    return short


def resize_bilinear(t: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of [B, C, H, W] to size x size (align_corners False), as EG3D resizes renders."""
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=antialias)


class SynthesisBlockNoUp(nn.Module):
    """A skip-architecture synthesis block that keeps the resolution: conv0 -> conv1 -> image += torgb.

    Unlike ``SynthesisBlock`` neither the features nor the incoming image are up-sampled; the
    ``resample_filter`` buffer exists only because the official state carries it.
    """

    num_conv = 2
    num_torgb = 1

    def __init__(
        self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int, conv_clamp: float
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.register_buffer("resample_filter", setup_filter())
        self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)

    def forward(
        self, x: torch.Tensor, img: torch.Tensor, ws: torch.Tensor, noise_mode: str = "none"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, in, R, R], img [B, 3, R, R], ws [B, 3, w_dim] -> (features [B, out, R, R], image)."""
        x = self.conv0(x, ws[:, 0], noise_mode)
        x = self.conv1(x, ws[:, 1], noise_mode)
        return x, img + self.torgb(x, ws[:, 2])


class Superresolution(nn.Module):
    """``sr(rgb [B, 3, r, r], features [B, channels, r, r], ws [B, num_ws, 512]) -> image [B, 3, R, R]``."""

    def __init__(
        self,
        variant: str = "SuperresolutionHybrid2X",
        channels: int = 32,
        img_resolution: int | None = None,
        sr_antialias: bool = True,
        w_dim: int = SR_W_DIM,
        conv_clamp: float = SR_CONV_CLAMP,
    ) -> None:
        super().__init__()
        self.variant = variant_name(variant)
        spec = SUPERRESOLUTION_VARIANTS[self.variant]
        if img_resolution is not None and img_resolution != spec.img_resolution:
            raise ValueError(
                f"{self.variant} makes {spec.img_resolution}x{spec.img_resolution} images, "
                f"not img_resolution {img_resolution}"
            )
        if channels < 3:
            raise ValueError(f"super-resolution channels must be >= 3 (rgb + features), got {channels}")
        self.spec = spec
        self.channels = channels
        self.w_dim = w_dim
        self.img_resolution = spec.img_resolution
        self.input_resolution = spec.input_resolution
        self.sr_antialias = sr_antialias
        mid, out = spec.block_channels
        if spec.block0_up:
            self.block0 = SynthesisBlock(
                channels, mid, w_dim, spec.input_resolution * 2, 3, use_noise=True, conv_clamp=conv_clamp
            )
        else:
            self.block0 = SynthesisBlockNoUp(channels, mid, w_dim, spec.input_resolution, 3, conv_clamp=conv_clamp)
        self.block1 = SynthesisBlock(mid, out, w_dim, spec.img_resolution, 3, use_noise=True, conv_clamp=conv_clamp)
        if spec.has_resample_filter:
            self.register_buffer("resample_filter", setup_filter())

    def _resize(self, t: torch.Tensor) -> torch.Tensor:
        size = t.shape[-1]
        wanted = self.input_resolution
        if size == wanted or (self.spec.resize_only_smaller and size > wanted):
            return t
        return resize_bilinear(t, wanted, self.sr_antialias)

    def forward(self, rgb: torch.Tensor, x: torch.Tensor, ws: torch.Tensor) -> torch.Tensor:
        """Only ``ws[:, -1]`` is used; noise is always off (noise_mode 'none')."""
        if x.ndim != 4 or x.shape[1] != self.channels or x.shape[-1] != x.shape[-2]:
            raise ValueError(f"features must be [B, {self.channels}, r, r], got {tuple(x.shape)}")
        if rgb.ndim != 4 or rgb.shape[1] != 3 or rgb.shape[0] != x.shape[0] or rgb.shape[-2:] != x.shape[-2:]:
            raise ValueError(f"rgb must be [B, 3, r, r] matching features {tuple(x.shape)}, got {tuple(rgb.shape)}")
        if ws.ndim != 3 or ws.shape[0] != x.shape[0] or ws.shape[-1] != self.w_dim:
            raise ValueError(f"ws must be [{x.shape[0]}, num_ws, {self.w_dim}], got {tuple(ws.shape)}")
        if self.spec.resize_only_smaller and x.shape[-1] > self.input_resolution:
            raise ValueError(f"{self.variant} takes renders of at most {self.input_resolution}^2, got {x.shape[-1]}^2")
        w = ws[:, -1:].repeat(1, 3, 1)
        x, img = self._resize(x), self._resize(rgb)
        x, img = self.block0(x, img, w, noise_mode="none")
        _, img = self.block1(x, img, w, noise_mode="none")
        return img

    def extra_repr(self) -> str:
        return f"variant={self.variant}, channels={self.channels}, {self.input_resolution} -> {self.img_resolution}"

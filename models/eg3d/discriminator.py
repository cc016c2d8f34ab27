"""EG3D's dual discriminator: the final image and the raw neural render judged together.

The raw render (``image_raw``, at the neural resolution) is resized to the final resolution
(bilinear, antialiased, align_corners False) and stacked onto the image as channels 3..5, so the
StyleGAN2 ResNet discriminator sees 6 channels and can penalise an image the super-resolution head
made inconsistent with the render. It is conditioned on the 25-number camera label ``c`` through a
projection head (mapping network without z, 8 layers, output ``cmap_dim``).

The blocks are the EpiGRAF ones (``models.discriminator``: same StyleGAN2 layers and names) minus
the ``fromrgb`` layer that EG3D builds only in the first block. Names match the official state.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..discriminator import DiscriminatorBlock, DiscriminatorEpilogue
from ..layers import setup_filter
from ..mapping import MappingNetwork
from .superresolution import resize_bilinear

DEFAULT_C_DIM = 25  # cam2world 4x4 + intrinsics 3x3, row-major


def resize_raw(image_raw: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the raw render to ``size`` x ``size`` the way EG3D's dual discriminator does ('antialiased')."""
    return resize_bilinear(image_raw, size, antialias=True)


class _Block(DiscriminatorBlock):
    """A ResNet discriminator block with ``fromrgb`` only where it is used (the first block)."""

    def __init__(self, in_channels: int, *args, **kwargs) -> None:
        super().__init__(in_channels, *args, **kwargs)
        if in_channels != 0:
            del self.fromrgb


class DualDiscriminator(nn.Module):
    """``D({'image': [B, 3, R, R], 'image_raw': [B, 3, r, r]}, c [B, c_dim]) -> logits [B, 1]``.

    ``num_fp16_res`` only decides which blocks run in fp16 on CUDA (as the official code does); on
    the CPU everything is fp32. ``disc_c_noise`` (training only) adds Gaussian noise scaled by the
    batch's per-entry std to ``c`` before the projection head.
    """

    def __init__(
        self,
        img_resolution: int,
        c_dim: int = DEFAULT_C_DIM,
        img_channels: int = 3,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 4,
        conv_clamp: float | None = 256,
        cmap_dim: int | None = None,
        disc_c_noise: float = 0.0,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        mapping_layers: int = 8,
    ) -> None:
        super().__init__()
        log2 = int(math.log2(img_resolution)) if img_resolution > 0 else 0
        if img_resolution < 8 or 2**log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 8, got {img_resolution}")
        if c_dim < 0:
            raise ValueError(f"c_dim must be >= 0, got {c_dim}")
        self.c_dim = c_dim
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.disc_c_noise = disc_c_noise
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        if cmap_dim is None:
            cmap_dim = channels[4]
        if c_dim == 0:
            cmap_dim = 0
        self.cmap_dim = cmap_dim
        for res in self.block_resolutions:
            block = _Block(
                channels[res] if res < img_resolution else 0,
                channels[res],
                channels[res // 2],
                resolution=res,
                img_channels=img_channels * 2,
                conv_clamp=conv_clamp,
                use_fp16=num_fp16_res > 0 and res >= fp16_resolution,
            )
            setattr(self, f"b{res}", block)
        if c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=c_dim, w_dim=cmap_dim, num_ws=None, num_layers=mapping_layers, w_avg_beta=None
            )
        self.b4 = DiscriminatorEpilogue(
            channels[4],
            cmap_dim=cmap_dim,
            resolution=4,
            mbstd_group_size=mbstd_group_size,
            mbstd_num_channels=mbstd_num_channels,
            conv_clamp=conv_clamp,
        )
        # Kept for the official state (it feeds only the unused 'classic' resize mode).
        self.register_buffer("resample_filter", setup_filter())

    def stack(self, image: torch.Tensor, image_raw: torch.Tensor) -> torch.Tensor:
        """[B, 3, R, R] + [B, 3, r, r] -> [B, 6, R, R] (the raw render resized to R)."""
        want = (self.img_channels, self.img_resolution, self.img_resolution)
        if image.ndim != 4 or tuple(image.shape[1:]) != want:
            raise ValueError(f"image must be [B, {want[0]}, {want[1]}, {want[2]}], got {tuple(image.shape)}")
        if image_raw.ndim != 4 or image_raw.shape[:2] != image.shape[:2]:
            raise ValueError(
                f"image_raw must be [{image.shape[0]}, {self.img_channels}, r, r] like image, "
                f"got {tuple(image_raw.shape)}"
            )
        return torch.cat([image, resize_raw(image_raw, self.img_resolution).to(image.dtype)], dim=1)

    def forward(self, img: dict[str, torch.Tensor], c: torch.Tensor | None = None, **_: object) -> torch.Tensor:
        if not isinstance(img, dict) or "image" not in img or "image_raw" not in img:
            raise ValueError("the dual discriminator takes {'image': [B, 3, R, R], 'image_raw': [B, 3, r, r]}")
        x_img = self.stack(img["image"], img["image_raw"])
        batch = x_img.shape[0]
        cmap = None
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or tuple(c.shape) != (batch, self.c_dim):
                got = None if c is None else tuple(c.shape)
                raise ValueError(f"c must be [{batch}, {self.c_dim}] camera labels, got {got}")
            c = c.to(torch.float32)
            if self.training and self.disc_c_noise > 0:
                c = c + torch.randn_like(c) * c.std(dim=0) * self.disc_c_noise
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, x_img)
        if self.c_dim > 0:
            cmap = self.mapping(None, c)
        return self.b4(x, cmap)

    def extra_repr(self) -> str:
        return f"c_dim={self.c_dim}, img_resolution={self.img_resolution}, img_channels={self.img_channels} (x2)"

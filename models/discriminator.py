"""The patch-aware EpiGRAF discriminator: a StyleGAN2 ResNet discriminator on image patches.

EpiGRAF trains on patches (64 x 64 by default) cut from full images at random scales and offsets.
The discriminator keeps the depth of a full-resolution StyleGAN2 discriminator by prepending
``num_additional_start_blocks`` blocks that run at the patch resolution without downsampling, and
it is told where the patch came from: the patch parameters (scale, offset x, offset y) are encoded
with ``ScalarEncoder1d`` (Fourier features + a learned embedding of the quantised value), mapped by
a small hyper-network, and every block's second convolution multiplies its *input activations* per
channel by ``1 + tanh(affine(h))``. The same embedding, optionally with the class label and camera
angles, drives the projection head (``head_mapping``) of the epilogue.

Module and parameter names follow the official code, so an official discriminator state dict loads
with ``strict=True``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from .layers import Conv2dLayer, FullyConnectedLayer, ScalarEncoder1d, setup_filter
from .mapping import MappingNetwork

# Patch-parameter encoder of the official code: values in [0, 1] scaled by 1000, 10 Fourier
# frequencies (sin + cos) plus a 256-d embedding of round(1000 v), per coordinate.
PATCH_X_MULTIPLIER = 1000.0
PATCH_CONST_EMB_DIM = 256


@dataclass
class DiscriminatorConfig:
    """Everything needed to rebuild a discriminator (defaults: the official FFHQ-512 D).

    ``img_resolution`` is the resolution D sees (the patch resolution); the nominal resolution of
    the block stack is ``img_resolution * 2**num_additional_start_blocks`` (the dataset resolution).
    ``channel_base`` is the official ``int(cbase * fmaps)`` (32768 * 0.5 for FFHQ).
    """

    c_dim: int = 0
    img_resolution: int = 64
    img_channels: int = 3
    num_additional_start_blocks: int = 3
    channel_base: int = 16384
    channel_max: int = 512
    num_fp16_res: int = 4
    conv_clamp: float | None = 256
    cmap_dim: int | None = None
    mbstd_group_size: int = 4
    mbstd_num_channels: int = 1
    patch_params_cond: bool = True
    hyper_mod: bool = True
    hyper_mod_dim: int = 512
    camera_cond: bool = False
    camera_cond_raw: bool = False
    camera_cond_drop_p: float = 0.0
    camera_cond_noise_std: float = 0.0

    def __post_init__(self) -> None:
        res = self.img_resolution
        if res < 4 or res & (res - 1):
            raise ValueError(f"img_resolution (the patch resolution) must be a power of two >= 4, got {res}")
        if self.num_additional_start_blocks < 0:
            raise ValueError(f"num_additional_start_blocks must be >= 0, got {self.num_additional_start_blocks}")
        if self.hyper_mod and not self.patch_params_cond:
            raise ValueError("hyper_mod needs patch_params_cond (the hyper-network reads the patch embedding)")
        if self.patch_params_cond and not self.hyper_mod and self.c_dim == 0 and not self.camera_cond:
            raise ValueError("patch_params_cond without hyper_mod leaves the projection head without inputs")

    @property
    def nominal_resolution(self) -> int:
        return self.img_resolution * 2**self.num_additional_start_blocks

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DiscriminatorConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown discriminator config keys: {', '.join(unknown)}")
        return cls(**data)


def num_additional_start_blocks(image_resolution: int, patch_resolution: int) -> int:
    """log2(image_res / patch_res): the extra full-patch-resolution blocks (3 for 512 / 64)."""
    ratio = image_resolution // patch_resolution
    if ratio < 1 or ratio * patch_resolution != image_resolution or ratio & (ratio - 1):
        raise ValueError(
            f"image resolution {image_resolution} must be the patch resolution {patch_resolution} times a power of two"
        )
    return int(math.log2(ratio))


class HyperModConv2dLayer(Conv2dLayer):
    """Conv2dLayer whose input activations are scaled per channel by ``1 + tanh(affine(h))``.

    The weights are not modulated and nothing is demodulated; ``affine`` starts at zero bias so the
    layer begins as a plain convolution (up to the random affine weights).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, h_dim: int, **kwargs: Any) -> None:
        super().__init__(in_channels, out_channels, kernel_size, **kwargs)
        self.affine = FullyConnectedLayer(h_dim, in_channels, bias_init=0)

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None, gain: float = 1.0) -> torch.Tensor:
        """x [B, I, H, W], h [B, h_dim] -> [B, O, H', W']."""
        if h is None:
            raise ValueError("a hyper-modulated convolution needs the patch embedding h [B, h_dim]")
        scales = 1.0 + self.affine(h.to(torch.float32)).tanh()
        x = (x * scales[:, :, None, None]).to(x.dtype)
        return super().forward(x, gain=gain)


class DiscriminatorBlock(nn.Module):
    """StyleGAN2 'resnet' block: out = skip(x) + conv1(conv0(x)), both branches scaled by sqrt(0.5).

    Every block owns a ``fromrgb`` (as in the official code, so checkpoints match) but only the first
    one (``in_channels == 0``) uses it. ``down=1`` makes one of EpiGRAF's additional start blocks.
    """

    def __init__(
        self,
        in_channels: int,
        tmp_channels: int,
        out_channels: int,
        resolution: int,
        img_channels: int,
        down: int = 2,
        conv_clamp: float | None = None,
        use_fp16: bool = False,
        hyper_mod_dim: int = 0,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.use_fp16 = use_fp16
        self.register_buffer("resample_filter", setup_filter())
        self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        if hyper_mod_dim > 0:
            self.conv1 = HyperModConv2dLayer(
                tmp_channels, out_channels, 3, h_dim=hyper_mod_dim, activation="lrelu", down=down, conv_clamp=conv_clamp
            )
        else:
            self.conv1 = Conv2dLayer(
                tmp_channels, out_channels, 3, activation="lrelu", down=down, conv_clamp=conv_clamp
            )
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=down)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, in, H, W] (None for the first block), img [B, C, H, W] -> [B, out, H / down, W / down]."""
        device = (x if x is not None else img).device
        dtype = torch.float16 if self.use_fp16 and device.type == "cuda" else torch.float32
        if x is not None:
            x = x.to(dtype)
        if self.in_channels == 0:
            y = self.fromrgb(img.to(dtype))
            x = x + y if x is not None else y
        gain = math.sqrt(0.5)
        y = self.skip(x, gain=gain)
        x = self.conv0(x)
        if isinstance(self.conv1, HyperModConv2dLayer):
            x = self.conv1(x, h, gain=gain)
        else:
            x = self.conv1(x, gain=gain)
        return y + x

    def extra_repr(self) -> str:
        return f"resolution={self.resolution}, use_fp16={self.use_fp16}"


class MinibatchStdLayer(nn.Module):
    """Append the mean standard deviation over groups of samples as extra channels.

    Group membership is strided: with group size G, sample i belongs to group i mod (B / G).
    """

    def __init__(self, group_size: int | None, num_channels: int = 1) -> None:
        super().__init__()
        self.group_size = group_size
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] -> [B, C + num_channels, H, W]."""
        b, c, h, w = x.shape
        g = min(self.group_size, b) if self.group_size is not None else b
        if b % g:
            raise ValueError(f"minibatch-std group size {g} must divide the batch size {b}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}, num_channels={self.num_channels}"


class DiscriminatorEpilogue(nn.Module):
    """4x4 head: minibatch std, 3x3 conv, fc, out; projected onto ``cmap`` when conditioned."""

    def __init__(
        self,
        in_channels: int,
        cmap_dim: int,
        resolution: int,
        mbstd_group_size: int | None = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.cmap_dim = cmap_dim
        self.resolution = resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(
            in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp
        )
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        """x [B, C, 4, 4], cmap [B, cmap_dim] or None -> logits [B, 1] (always fp32)."""
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = self.conv(x)
        x = self.out(self.fc(x.flatten(1)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / np.sqrt(self.cmap_dim))
        return x


class Discriminator(nn.Module):
    """Patch-aware discriminator.

    ``D(img [B, C, r, r], c [B, c_dim] or None, patch_params={'scales': [B, 2], 'offsets': [B, 2]},
    camera_angles [B, 3] or None) -> logits [B]``. Patch parameters are in the [0, 1] image range
    (offset y counts from the bottom, like the rays); without them the patch is the whole image.
    """

    def __init__(self, config: DiscriminatorConfig | None = None, **overrides: Any) -> None:
        super().__init__()
        if config is None:
            config = DiscriminatorConfig(**overrides)
        elif overrides:
            config = dataclasses.replace(config, **overrides)
        self.config = cfg = config
        self.c_dim = cfg.c_dim
        self.img_resolution = cfg.img_resolution
        nominal = cfg.nominal_resolution
        log2 = int(math.log2(nominal))
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        channels = {res: min(cfg.channel_base // res, cfg.channel_max) for res in self.block_resolutions + [4]}
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        cmap_dim = channels[4] if cfg.cmap_dim is None else cfg.cmap_dim

        if cfg.patch_params_cond:
            self.scalar_enc = ScalarEncoder1d(3, x_multiplier=PATCH_X_MULTIPLIER, const_emb_dim=PATCH_CONST_EMB_DIM)
        else:
            self.scalar_enc = None
        if cfg.c_dim == 0 and self.scalar_enc is None and not cfg.camera_cond:
            cmap_dim = 0
        self.cmap_dim = cmap_dim

        if cfg.hyper_mod:
            self.hyper_mod_mapping = MappingNetwork(
                z_dim=0, c_dim=self.scalar_enc.out_dim, w_dim=cfg.hyper_mod_dim, num_ws=None, w_avg_beta=None
            )
            hyper_mod_dim = cfg.hyper_mod_dim
        else:
            self.hyper_mod_mapping = None
            hyper_mod_dim = 0

        for i, res in enumerate(self.block_resolutions):
            block = DiscriminatorBlock(
                in_channels=channels[res] if res < nominal else 0,
                tmp_channels=channels[res],
                out_channels=channels[res // 2],
                resolution=res,
                img_channels=cfg.img_channels,
                down=1 if i < cfg.num_additional_start_blocks else 2,
                conv_clamp=cfg.conv_clamp,
                use_fp16=res >= fp16_resolution and cfg.num_fp16_res > 0,
                hyper_mod_dim=hyper_mod_dim,
            )
            setattr(self, f"b{res}", block)

        # The patch embedding reaches the head only together with hyper-modulation (official wiring).
        self.head_cond_dim = cfg.c_dim + (
            self.scalar_enc.out_dim if self.scalar_enc is not None and cfg.hyper_mod else 0
        )
        if cfg.c_dim > 0 or self.scalar_enc is not None:
            self.head_mapping = MappingNetwork(
                z_dim=0,
                c_dim=self.head_cond_dim,
                w_dim=cmap_dim,
                num_ws=None,
                w_avg_beta=None,
                camera_cond=cfg.camera_cond,
                camera_raw_scalars=cfg.camera_cond_raw,
                camera_cond_drop_p=cfg.camera_cond_drop_p,
                camera_cond_noise_std=cfg.camera_cond_noise_std,
            )
        else:
            self.head_mapping = None
        self.b4 = DiscriminatorEpilogue(
            channels[4],
            cmap_dim=cmap_dim,
            resolution=4,
            mbstd_group_size=cfg.mbstd_group_size,
            mbstd_num_channels=cfg.mbstd_num_channels,
            conv_clamp=cfg.conv_clamp,
        )

    def patch_embedding(self, patch_params: dict[str, torch.Tensor] | None, batch: int, device: torch.device):
        """[B, 3 * 276] encoding of (scale_x, offset_x, offset_y); a whole image when params are None."""
        if patch_params is None:
            scales = torch.ones(batch, 2, device=device)
            offsets = torch.zeros(batch, 2, device=device)
        else:
            scales, offsets = patch_params["scales"], patch_params["offsets"]
        cond = torch.cat([scales[:, :1], offsets], dim=1).to(torch.float32)
        if cond.shape != (batch, 3):
            raise ValueError(f"patch scales/offsets must be [B, 2] with B={batch}, got {tuple(scales.shape)}")
        return self.scalar_enc(cond)

    def forward(
        self,
        img: torch.Tensor,
        c: torch.Tensor | None = None,
        patch_params: dict[str, torch.Tensor] | None = None,
        camera_angles: torch.Tensor | None = None,
        **_: Any,
    ) -> torch.Tensor:
        """img [B, C, r, r] in [-1, 1] -> logits [B]."""
        b = img.shape[0]
        if img.shape[1:] != (self.config.img_channels, self.img_resolution, self.img_resolution):
            raise ValueError(
                f"D expects [B, {self.config.img_channels}, {self.img_resolution}, {self.img_resolution}] "
                f"patches, got {tuple(img.shape)}"
            )
        if c is None:
            c = torch.zeros(b, 0, device=img.device)
        h = None
        if self.scalar_enc is not None:
            emb = self.patch_embedding(patch_params, b, img.device)
            if self.config.hyper_mod:
                c = torch.cat([c.to(torch.float32), emb], dim=1)
                h = self.hyper_mod_mapping(None, emb)
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, h)
        cmap = None
        if self.head_mapping is not None:
            if self.config.camera_cond and camera_angles is None:
                raise ValueError("this discriminator is camera-conditioned: pass camera_angles [B, 3]")
            cmap = self.head_mapping(None, c if c.shape[1] > 0 else None, camera_angles=camera_angles)
        return self.b4(x, cmap).squeeze(1)

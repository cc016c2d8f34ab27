"""The StyleGAN2 backbone: a 'skip' synthesis network that draws the tri-plane from ws.

(Official checkpoints name it ``synthesis.tri_plane_decoder``; it is no decoder: the tri-plane MLP
in triplane.py decodes the planes.)

Blocks b4, b8, ... up to the tri-plane resolution; each has modulated 3x3 convolutions (conv0 with
2x up-sampling, conv1) with per-pixel noise, and a ToRGB layer whose output (3 x feat_dim channels,
not 3) is accumulated through FIR up-sampling. Names follow the official checkpoints.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .initial_weights import normal_weights
from .layers import FullyConnectedLayer, bias_act, conv2d_resample, setup_filter, upsample2d

NOISE_MODES = ("random", "const", "none")


def _no_autograd(x: torch.Tensor) -> bool:
    """True when ``x`` may be overwritten in place: no graph is being recorded through it (inference)."""
    return not (torch.is_grad_enabled() and x.requires_grad)


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = False,
) -> torch.Tensor:
    """Style-modulated convolution. x: [B, I, H, W], weight: [O, I, k, k], styles: [B, I].

    ``fused=False`` scales the input channels by the styles, convolves with the shared weight and
    scales the outputs by the demodulation coefficients (cheap backward, used in training);
    ``fused=True`` convolves with per-sample modulated weights as one grouped convolution (what the
    official code does in eval mode). Both are the same function up to float rounding (~1e-6).
    """
    batch = x.shape[0]
    w = weight.unsqueeze(0) * styles.reshape(batch, 1, -1, 1, 1)  # [B, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [B, O]
    if fused:
        if demodulate:
            w = w * dcoefs.reshape(batch, -1, 1, 1, 1)
        out_ch = w.shape[1]
        x = x.reshape(1, -1, *x.shape[2:])
        w = w.reshape(-1, *w.shape[2:]).to(x.dtype)
        x = conv2d_resample(x, w, resample_filter, up=up, padding=padding, groups=batch)
        x = x.reshape(batch, out_ch, *x.shape[2:])
        if noise is not None:
            x = x.add_(noise.to(x.dtype)) if _no_autograd(x) else x + noise.to(x.dtype)
        return x
    x = x * styles.reshape(batch, -1, 1, 1).to(x.dtype)
    x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
    if demodulate:
        x = x * dcoefs.reshape(batch, -1, 1, 1).to(x.dtype)
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv + noise + bias + leaky ReLU (gain sqrt 2), clamped to +-conv_clamp."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        up: int = 1,
        use_noise: bool = True,
        conv_clamp: float | None = 256,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.up = up
        self.use_noise = use_noise
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(normal_weights(out_channels, in_channels, 3, 3))
        if use_noise:
            self.register_buffer("noise_const", normal_weights(resolution, resolution))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))

    def forward(
        self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "random", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            shape = (x.shape[0], 1, self.resolution, self.resolution)
            noise = torch.randn(shape, device=x.device, generator=generator) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(
            x,
            self.weight,
            styles,
            noise=noise,
            up=self.up,
            padding=1,
            resample_filter=self.resample_filter,
            fused=not self.training,
        )
        # x is the convolution's own output: outside autograd it is finished in place
        return bias_act(x, self.bias.to(x.dtype), act="lrelu", clamp=self.conv_clamp, inplace=_no_autograd(x))


class ToRGBLayer(nn.Module):
    """1x1 modulated conv without demodulation; styles scaled by 1/sqrt(in_channels)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = 256) -> None:
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(normal_weights(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=not self.training)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp, inplace=_no_autograd(x))


class SynthesisBlock(nn.Module):
    """One resolution level of the skip architecture: (const | conv0 up) -> conv1 -> torgb."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        w_dim: int,
        resolution: int,
        img_channels: int,
        use_noise: bool = True,
        conv_clamp: float | None = 256,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.resolution = resolution
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0:
            self.const = nn.Parameter(normal_weights(out_channels, resolution, resolution))
            self.num_conv = 1
        else:
            self.conv0 = SynthesisLayer(
                in_channels, out_channels, w_dim, resolution, up=2, use_noise=use_noise, conv_clamp=conv_clamp
            )
            self.num_conv = 2
        self.conv1 = SynthesisLayer(
            out_channels, out_channels, w_dim, resolution, use_noise=use_noise, conv_clamp=conv_clamp
        )
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        noise_mode: str = "random",
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """ws: [B, num_conv + num_torgb, w_dim] -> (features, accumulated image)."""
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
            x = self.conv1(x, ws[:, 0], noise_mode, generator)
        else:
            x = self.conv0(x, ws[:, 0], noise_mode, generator)
            x = self.conv1(x, ws[:, 1], noise_mode, generator)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        y = self.torgb(x, ws[:, self.num_conv])
        if img is None:
            img = y
        else:  # in inference the upsampled image is a fresh tensor: add into it (no new 100 MB at 512^2)
            img = img.add_(y) if _no_autograd(img) and img.dtype == y.dtype else img + y
        return x, img


class TriPlaneBackbone(nn.Module):
    """ws [B, num_ws, w_dim] -> raw tri-plane features [B, out_channels, R, R].

    Block k reads ws[w_idx : w_idx + num_conv + 1] and w_idx advances by num_conv, so each ToRGB
    shares its w with the next block's first convolution (num_ws = 2 log2(R) - 2).
    """

    def __init__(
        self,
        w_dim: int,
        out_resolution: int,
        out_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        use_noise: bool = True,
        conv_clamp: float | None = 256,
    ) -> None:
        super().__init__()
        log2 = int(math.log2(out_resolution))
        if 2**log2 != out_resolution or out_resolution < 4:
            raise ValueError(f"tri-plane resolution must be a power of two >= 4, got {out_resolution}")
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        self.num_ws = 0
        for res in self.block_resolutions:
            in_ch = channels[res // 2] if res > 4 else 0
            block = SynthesisBlock(
                in_ch, channels[res], w_dim, res, out_channels, use_noise=use_noise, conv_clamp=conv_clamp
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += 1  # the last ToRGB has a w of its own

    def forward(
        self, ws: torch.Tensor, noise_mode: str = "random", generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block: SynthesisBlock = getattr(self, f"b{res}")
            block_ws = ws[:, w_idx : w_idx + block.num_conv + block.num_torgb]
            x, img = block(x, img, block_ws, noise_mode, generator)
            w_idx += block.num_conv
        return img

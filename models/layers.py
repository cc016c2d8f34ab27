"""Building blocks shared by the generator and the discriminator.

Everything here is plain PyTorch and follows the StyleGAN2 conventions that the official EpiGRAF
checkpoints were trained with: equalised learning rate (weights are stored unscaled and multiplied by
``lr_multiplier / sqrt(fan_in)`` at run time), a leaky-ReLU that carries a gain of sqrt(2), optional
clamping of activations, and FIR resampling with the ``[1, 3, 3, 1]`` binomial filter.
Parameter names match the official ones so that checkpoints map one to one.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .initial_weights import normal_weights

SQRT2 = math.sqrt(2.0)

# Default gain of each activation (the factor that keeps activations at unit variance).
ACTIVATION_GAINS: dict[str, float] = {"linear": 1.0, "lrelu": SQRT2}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    act: str = "linear",
    gain: float = 1.0,
    clamp: float | None = None,
    dim: int = 1,
    inplace: bool = False,
) -> torch.Tensor:
    """Add a bias, apply an activation, scale by its default gain times ``gain``, then clamp.

    ``b`` is broadcast along ``dim`` of ``x``. ``clamp`` bounds the output to [-clamp, clamp]
    (the official code keeps conv_clamp=256 active even in fp32, so parity needs it).
    ``inplace`` overwrites ``x`` (a tensor its caller just made, outside autograd) with the same
    numbers: at 512^2 each of the four steps would otherwise allocate and fill a 64 MB tensor.
    """
    if b is not None:
        shape = [1] * x.ndim
        shape[dim] = -1
        x = x.add_(b.reshape(shape)) if inplace else x + b.reshape(shape)
    if act == "lrelu":
        x = F.leaky_relu(x, 0.2, inplace=inplace)
    elif act != "linear":
        raise ValueError(f"unknown activation {act!r}; expected 'linear' or 'lrelu'")
    total_gain = ACTIVATION_GAINS[act] * gain
    if total_gain != 1:
        x = x.mul_(total_gain) if inplace else x * total_gain
    if clamp is not None and clamp >= 0:
        x = x.clamp_(-clamp, clamp) if inplace else x.clamp(-clamp, clamp)
    return x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale each row to unit root-mean-square (StyleGAN's pixel norm for latents)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate.

    Stored weight [out, in] is multiplied by ``lr_multiplier / sqrt(in)`` and the bias by
    ``lr_multiplier`` at run time; the mapping network uses lr_multiplier 0.01.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: str = "linear",
        lr_multiplier: float = 1.0,
        bias_init: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight = nn.Parameter(normal_weights(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., in] -> [..., out]."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None and x.ndim == 2:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        x = x.matmul(w.t())
        return bias_act(x, b, act=self.activation, dim=x.ndim - 1)

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, activation={self.activation}"


# ---------------------------------------------------------------------------------------------
# FIR resampling (the reference formulation of upfirdn2d: upsample, pad, filter, downsample)
# ---------------------------------------------------------------------------------------------


def setup_filter(taps: list[float] | None = None) -> torch.Tensor:
    """Separable binomial filter as a normalised 2-D [4, 4] tensor (sum 1)."""
    k = torch.as_tensor(taps if taps is not None else [1, 3, 3, 1], dtype=torch.float32)
    f = torch.outer(k, k)
    return f / f.sum()


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor,
    up: int = 1,
    down: int = 1,
    padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    gain: float = 1.0,
) -> torch.Tensor:
    """Zero-insertion upsampling by ``up``, padding (x0, x1, y0, y1; negative crops), a depthwise
    convolution with the 2-D filter ``f`` (scaled by ``gain``) and decimation by ``down``.

    x: [B, C, H, W] -> [B, C, H', W'].
    """
    b, c, h, w = x.shape
    if up > 1:
        x = x.reshape(b, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(b, c, h * up, w * up)
    px0, px1, py0, py1 = padding
    weight = (f * gain).to(x.dtype).flip([0, 1])
    weight = weight[None, None].repeat(c, 1, 1, 1)
    if px0 == px1 >= 0 and py0 == py1 >= 0:
        # symmetric zero padding (every resampling layer of the networks here) is the convolution's own: no
        # padded copy of x (at 512^2 a fresh 68 MB per up-sampling layer, memory first faulted in)
        x = F.conv2d(x, weight, padding=(py0, px0), groups=c)
    else:
        x = F.pad(x, [max(px0, 0), max(px1, 0), max(py0, 0), max(py1, 0)])
        x = x[:, :, max(-py0, 0) : x.shape[2] - max(-py1, 0), max(-px0, 0) : x.shape[3] - max(-px1, 0)]
        x = F.conv2d(x, weight, groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """Upsample by ``up`` with the FIR filter, preserving the signal's mean (gain up**2).

    The same function as ``upfirdn2d(x, f, up=up, ...)``, computed as one depthwise transposed
    convolution with stride ``up``: zero insertion, padding and filtering in a single pass, without
    the zero-inserted and padded copies (4x the output's size). At 256^2 -> 512^2 with 96 channels
    (the tri-plane image of an FFHQ-size model) it took 101 ms against 239 ms on 2 threads (medians of
    10; in a whole synthesis, with its memory reused, the saving was 35 ms); results differ from the
    reference formulation by float rounding only (4.8e-7 measured).
    """
    fw = f.shape[-1]
    p0 = (fw + up - 1) // 2
    p1 = (fw - up) // 2
    pt = fw - 1 - p0  # the transposed convolution's padding that crops to the same window
    if f.ndim == 2 and pt >= 0 and p0 == p1 + up - 1:
        c = x.shape[1]
        weight = (f * (up * up)).to(x.dtype)[None, None].expand(c, 1, fw, fw)
        return F.conv_transpose2d(x, weight, stride=up, padding=pt, groups=c)
    return upfirdn2d(x, f, up=up, padding=(p0, p1, p0, p1), gain=up * up)


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    up: int = 1,
    down: int = 1,
    padding: int = 0,
    groups: int = 1,
) -> torch.Tensor:
    """2-D convolution with optional FIR up- or down-sampling, as StyleGAN2 arranges it.

    Up-sampling is a stride-2 transposed convolution (weight not flipped) followed by the FIR
    filter; down-sampling filters first and then convolves with stride 2. x: [B, I, H, W],
    w: [O, I, k, k].
    """
    kw = w.shape[-1]
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    assert f is not None, "resampling needs a filter"
    fw = f.shape[-1]
    p0 = p1 = padding
    if up > 1:
        p0 += (fw + up - 1) // 2
        p1 += (fw - up) // 2
    if down > 1:
        p0 += (fw - down + 1) // 2
        p1 += (fw - down) // 2
    if kw == 1 and down > 1 and up == 1:
        x = upfirdn2d(x, f, down=down, padding=(p0, p1, p0, p1))
        return F.conv2d(x, w, groups=groups)
    if up > 1 and down == 1:
        p0 -= kw - 1
        p1 -= kw - up
        pt = max(min(-p0, -p1), 0)
        o, i = w.shape[:2]
        wt = w.reshape(groups, o // groups, i, kw, kw).transpose(1, 2).reshape(groups * i, o // groups, kw, kw)
        x = F.conv_transpose2d(x, wt, stride=up, padding=pt, groups=groups)
        return upfirdn2d(x, f, padding=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up * up)
    if down > 1 and up == 1:
        x = upfirdn2d(x, f, padding=(p0, p1, p0, p1))
        return F.conv2d(x, w, stride=down, groups=groups)
    raise NotImplementedError("simultaneous up- and down-sampling is not used by EpiGRAF")


class Conv2dLayer(nn.Module):
    """Equalised-learning-rate convolution with optional FIR down/up-sampling (used by D)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,
        down: int = 1,
        conv_clamp: float | None = None,
    ) -> None:
        super().__init__()
        self.activation = activation
        self.up = up
        self.down = down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATION_GAINS[activation]
        self.weight = nn.Parameter(normal_weights(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, self.up, self.down, self.padding)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, act=self.activation, gain=gain, clamp=clamp)


# ---------------------------------------------------------------------------------------------
# Scalar encoders (patch parameters in D, camera angles in G/D conditioning)
# ---------------------------------------------------------------------------------------------


class FourierEncoder1d(nn.Module):
    """Sines and cosines of log-spaced frequencies for scalars expected in [0, 1].

    The input is multiplied by ``x_multiplier``; frequencies are pi * 2^k / T for k < K with
    T = 2^ceil(log2 m) and K = ceil(log2 T), stored in the buffer ``fourier_coefs``.
    """

    def __init__(self, coord_dim: int, x_multiplier: float, use_cos: bool = True) -> None:
        super().__init__()
        self.coord_dim = coord_dim
        self.x_multiplier = x_multiplier
        self.use_cos = use_cos
        period = 2 ** int(np.ceil(np.log2(x_multiplier)))
        num_freqs = int(np.ceil(np.log2(period)))
        coefs = np.pi * 2.0 ** np.arange(num_freqs) / period
        self.register_buffer("fourier_coefs", torch.from_numpy(coefs).float())
        self.out_dim_per_coord = num_freqs * (2 if use_cos else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B, D, out_dim_per_coord]."""
        raw = (x * self.x_multiplier).unsqueeze(2) * self.fourier_coefs.view(1, 1, -1)
        parts = [raw.sin(), raw.cos()] if self.use_cos else [raw.sin()]
        return torch.cat(parts, dim=2)


class ScalarEncoder1d(nn.Module):
    """Per-coordinate features [raw | sin..cos.. | learned constant embedding], coordinate-major.

    The constant embedding looks up ``round(x * x_multiplier)`` in an ``nn.Embedding`` so that each
    quantised value (e.g. a patch scale) gets its own learned vector.
    """

    def __init__(
        self,
        coord_dim: int,
        x_multiplier: float,
        const_emb_dim: int = 0,
        use_raw: bool = False,
        use_cos: bool = True,
    ) -> None:
        super().__init__()
        self.coord_dim = coord_dim
        self.x_multiplier = x_multiplier
        self.const_emb_dim = const_emb_dim
        self.use_raw = use_raw
        per_coord = 1 if use_raw else 0
        if x_multiplier > 0:
            self.fourier_encoder = FourierEncoder1d(coord_dim, x_multiplier, use_cos=use_cos)
            per_coord += self.fourier_encoder.out_dim_per_coord
        else:
            self.fourier_encoder = None
        if const_emb_dim > 0:
            self.const_embed = nn.Embedding(int(np.ceil(x_multiplier)) + 1, const_emb_dim)
            per_coord += const_emb_dim
        else:
            self.const_embed = None
        self.out_dim = per_coord * coord_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[B, coord_dim] -> [B, out_dim]."""
        assert x.ndim == 2 and x.shape[1] == self.coord_dim, f"expected [B, {self.coord_dim}], got {x.shape}"
        feats = []
        if self.use_raw:
            feats.append(x.unsqueeze(2))
        if self.fourier_encoder is not None:
            feats.append(self.fourier_encoder(x))
        if self.const_embed is not None:
            idx = (x * self.x_multiplier).round().long()
            feats.append(self.const_embed(idx))
        return torch.cat(feats, dim=2).flatten(1)

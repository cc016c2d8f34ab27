"""Adaptive discriminator augmentation (ADA; Karras et al., "Training Generative Adversarial Networks
with Limited Data", NeurIPS 2020), written from the paper's description of the 'bgc' pipeline.

Why: with a small dataset D memorises the reals and its feedback to G collapses. ADA shows D only
augmented images, reals and fakes alike, each transform firing with a probability ``p`` < 1 so that
G still cannot learn the augmentations themselves ("non-leaking"), and tunes ``p`` from how sure D is
about the reals: E[sign(D(real))] above a target (0.6) means over-fitting, so ``p`` rises.

The pipeline (in this order, each transform fired independently per sample with probability p):

================  ==========================================================================
rotate90          rotation by k * 90 degrees, k uniform in {0, 1, 2, 3}
xint              integer translation, uniform in [-0.125, 0.125] of the image size, rounded
scale             isotropic scaling by 2^N(0, 0.2^2) (lognormal, std 0.2 ln 2)
rotate            rotation by an angle uniform in [-pi, pi), drawn twice (before and after
                  aniso), each with probability 1 - sqrt(1 - p), so that some rotation happens
                  with probability p
aniso             scaling x by a and y by 1 / a, a = 2^N(0, 0.2^2)
xfrac             translation by N(0, 0.125^2) of the image size per axis
brightness        + N(0, 0.2^2) on every channel
contrast          x 2^N(0, 0.5^2)
lumaflip          with a fair coin, negate the luma component (keep the chroma)
hue               rotation around the luma axis by an angle uniform in [-pi, pi)
saturation        chroma x 2^N(0, 1)
================  ==========================================================================

Geometry (rotate90 .. xfrac) acts on the pixel grid with reflect padding (the image mirrored at its
edge pixels, without repeating them, periodically); colour (brightness .. saturation) acts on RGB
through one 4x4 homogeneous matrix per sample, with the luma axis (1, 1, 1) / sqrt(3).

How the resampling differs from the official implementation. The official pipeline composes all
geometric transforms (the integer ones too) into one matrix and resamples the batch through a
wavelet filter bank: reflect padding, 2x upsampling with a symlet-6 low-pass, bilinear sampling,
2x downsampling with the same filter. Here
- rotate90 and xint are exact pixel permutations (no filtering at all: a sample that is only
  rotated by 90 degrees and shifted is bit-exactly a permutation of the input pixels);
- the continuous transforms (scale, rotate, aniso, xfrac) resample by supersampling: each output
  pixel averages ``supersample`` x ``supersample`` bilinear taps of the reflect-extended input at
  sub-pixel positions spread over the output pixel (a box low-pass in output space, which limits
  aliasing when the image is shrunk, down to a scale of about 1 / supersample);
- only the samples whose continuous transform fired are resampled, the others pass unchanged.
So the anti-aliasing is weaker than the wavelet filter for strong minification and slightly
blurrier near the identity (at scale 1 and angle 0 with supersample 2, the effective kernel is
[1/8, 3/4, 1/8] per axis); the distributions of the transform parameters are the paper's.
Sampling is written with ``torch.gather`` so that the double backward of R1 works on every device
(``F.grid_sample``'s double backward is what the official code needed a custom operator for).

Randomness: all parameters are drawn on the CPU from an explicit ``torch.Generator`` (the training
loop derives one per (seed, step, phase, chunk)), for every sample whether or not its transform
fires, so the draws do not depend on the device or on which samples fire.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn

GEOMETRIC = ("rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
BGC = GEOMETRIC + COLOUR  # the 'bgc' pipeline without x-flip (what EpiGRAF trains with)

XINT_MAX = 0.125  # fraction of the image size
SCALE_STD = 0.2  # octaves (log2 units): scale = 2^N(0, std^2)
ANISO_STD = 0.2
XFRAC_STD = 0.125  # fraction of the image size
BRIGHTNESS_STD = 0.2
CONTRAST_STD = 0.5  # octaves
SATURATION_STD = 1.0  # octaves

AugmentParams = dict[str, torch.Tensor]


def _reflect(index: torch.Tensor, size: int) -> torch.Tensor:
    """Integer indices folded into [0, size) by mirroring at the edge pixels (no edge repetition)."""
    if size == 1:
        return torch.zeros_like(index)
    period = 2 * (size - 1)
    i = index.remainder(period)
    return torch.where(i >= size, period - i, i)


def _gather_pixels(images: torch.Tensor, yi: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
    """images[b, :, yi[b, n], xi[b, n]] -> [B, C, N] (indices already inside the image)."""
    b, c, h, w = images.shape
    flat = (yi * w + xi).unsqueeze(1).expand(b, c, yi.shape[1])
    return images.reshape(b, c, h * w).gather(2, flat)


def _sample_bilinear_reflect(images: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinear samples [B, C, N] at pixel coordinates y, x [B, N] of the reflect-extended images.

    Pixel centres are at integer coordinates. Only ``torch.gather`` and arithmetic are used, so the
    result is differentiable twice with respect to ``images`` (the weights carry no gradient).
    """
    h, w = images.shape[-2:]
    y0f, x0f = y.floor(), x.floor()
    fy, fx = (y - y0f).unsqueeze(1), (x - x0f).unsqueeze(1)
    y0, x0 = y0f.long(), x0f.long()
    ya, yb = _reflect(y0, h), _reflect(y0 + 1, h)
    xa, xb = _reflect(x0, w), _reflect(x0 + 1, w)
    top = _gather_pixels(images, ya, xa) * (1 - fx) + _gather_pixels(images, ya, xb) * fx
    bottom = _gather_pixels(images, yb, xa) * (1 - fx) + _gather_pixels(images, yb, xb) * fx
    return top * (1 - fy) + bottom * fy


def _rotation_2d(theta: torch.Tensor) -> torch.Tensor:
    """[B, 3, 3] homogeneous rotations by theta (radians)."""
    m = torch.eye(3, dtype=theta.dtype).repeat(theta.shape[0], 1, 1)
    c, s = theta.cos(), theta.sin()
    m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1] = c, -s, s, c
    return m


def _scale_2d(sx: torch.Tensor, sy: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, dtype=sx.dtype).repeat(sx.shape[0], 1, 1)
    m[:, 0, 0], m[:, 1, 1] = sx, sy
    return m


def _translate_2d(tx: torch.Tensor, ty: torch.Tensor) -> torch.Tensor:
    m = torch.eye(3, dtype=tx.dtype).repeat(tx.shape[0], 1, 1)
    m[:, 0, 2], m[:, 1, 2] = tx, ty
    return m


def _luma_axis() -> torch.Tensor:
    return torch.tensor([1.0, 1.0, 1.0]) / math.sqrt(3.0)


def _homogeneous_unit() -> torch.Tensor:
    """The 4x4 matrix with a single 1 at [3, 3] (so that I - it is the RGB block's identity)."""
    e = torch.zeros(4, 4, dtype=torch.float64)
    e[3, 3] = 1
    return e


class AdaptiveAugment(nn.Module):
    """The augmentation pipeline applied to D's inputs; ``p`` (a float32 buffer) is its strength.

    ``augment(images, generator)`` draws parameters and applies them; ``draw`` and ``apply`` are
    the two halves (for tests and for applying chosen parameters). With p == 0 the input tensor is
    returned as is, with no draw and no arithmetic, so a run without augmentation is bit-identical
    to one without this module. Images are [B, C, H, W]; the colour transforms need C == 3 and
    rotate90 needs square images.
    """

    def __init__(self, p: float = 0.0, transforms: Iterable[str] = BGC, supersample: int = 2) -> None:
        super().__init__()
        self.transforms = tuple(transforms)
        unknown = sorted(set(self.transforms) - set(BGC))
        if unknown:
            raise ValueError(f"unknown augmentation(s) {', '.join(unknown)}; choose from {', '.join(BGC)}")
        if supersample < 1:
            raise ValueError(f"supersample must be >= 1, got {supersample}")
        self.supersample = supersample
        self.register_buffer("p", torch.tensor(float(p), dtype=torch.float32))

    def extra_repr(self) -> str:
        return f"p={float(self.p):.4f}, transforms={','.join(self.transforms)}, supersample={self.supersample}"

    # ------------------------------------------------------------------ parameters
    def draw(self, batch: int, generator: torch.Generator | None = None) -> AugmentParams:
        """Random parameters for ``batch`` samples (CPU tensors) at the current p.

        Every entry holds the identity value (0 turns, no shift, scale 1, ...) for samples whose
        transform did not fire; ``<name>_fired`` holds the boolean masks (for statistics).
        """
        p = min(max(float(self.p), 0.0), 1.0)
        g = generator

        def octaves(std: float) -> torch.Tensor:
            return torch.exp2(torch.randn(batch, generator=g) * std)

        def turn() -> torch.Tensor:
            return (torch.rand(batch, generator=g) * 2 - 1) * math.pi

        p_rot = 1 - math.sqrt(1 - p)  # two independent rotations: at least one fires with probability p
        # (entry, transform, probability, value draw, identity value), in the pipeline's order
        steps: list[tuple[str, str, float, Callable[[], torch.Tensor], float]] = [
            ("rotate90", "rotate90", p, lambda: torch.randint(0, 4, (batch,), generator=g), 0),
            ("xint", "xint", p, lambda: (torch.rand(batch, 2, generator=g) * 2 - 1) * XINT_MAX, 0.0),
            ("scale", "scale", p, lambda: octaves(SCALE_STD), 1.0),
            ("rotate_pre", "rotate", p_rot, turn, 0.0),
            ("aniso", "aniso", p, lambda: octaves(ANISO_STD), 1.0),
            ("rotate_post", "rotate", p_rot, turn, 0.0),
            ("xfrac", "xfrac", p, lambda: torch.randn(batch, 2, generator=g) * XFRAC_STD, 0.0),
            ("brightness", "brightness", p, lambda: torch.randn(batch, generator=g) * BRIGHTNESS_STD, 0.0),
            ("contrast", "contrast", p, lambda: octaves(CONTRAST_STD), 1.0),
            ("lumaflip", "lumaflip", p, lambda: torch.randint(0, 2, (batch,), generator=g), 0),
            ("hue", "hue", p, turn, 0.0),
            ("saturation", "saturation", p, lambda: octaves(SATURATION_STD), 1.0),
        ]
        out: AugmentParams = {}
        enabled = set(self.transforms)
        for entry, transform, prob, value, identity in steps:
            if transform not in enabled:
                continue
            fired = torch.rand(batch, generator=g) < prob
            drawn = value()
            out[f"{entry}_fired"] = fired
            out[entry] = torch.where(fired.view(-1, *[1] * (drawn.dim() - 1)), drawn, identity)
        if "rotate" in enabled:
            out["rotate_fired"] = out["rotate_pre_fired"] | out["rotate_post_fired"]
        return out

    # ------------------------------------------------------------------ application
    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment a batch with fresh draws from ``generator`` (torch's global RNG when None)."""
        if float(self.p) <= 0:
            return images
        return self.apply(images, self.draw(images.shape[0], generator))

    def apply(self, images: torch.Tensor, params: AugmentParams) -> torch.Tensor:
        """Apply drawn (or hand-made) parameters; missing entries mean 'not enabled'."""
        x = images
        if "rotate90" in params:
            x = self._rotate90(x, params["rotate90"])
        if "xint" in params:
            x = self._shift(x, params["xint"])
        inverse = self._continuous_inverse(params, x.shape[0], x.shape[2], x.shape[3])
        if inverse is not None:
            x = self._resample(x, inverse)
        colour = self._colour_matrix(params, x.shape[0])
        if colour is not None:
            x = self._recolour(x, colour)
        return x

    @staticmethod
    def _rotate90(x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Per-sample torch.rot90 by k[b] quarter turns (exact)."""
        if not bool((k != 0).any()):
            return x
        if x.shape[-1] != x.shape[-2]:
            raise ValueError(f"rotate90 needs square images, got {tuple(x.shape[-2:])}")
        k = k.to(x.device).view(-1, 1, 1, 1)
        out = x
        for turns in (1, 2, 3):
            out = torch.where(k == turns, torch.rot90(x, turns, dims=(2, 3)), out)
        return out

    @staticmethod
    def _shift(x: torch.Tensor, fraction: torch.Tensor) -> torch.Tensor:
        """Move the content by round(fraction * size) pixels (x then y), filling with the reflection."""
        b, _, h, w = x.shape
        shift = torch.round(fraction * torch.tensor([w, h], dtype=fraction.dtype)).long()
        if not bool((shift != 0).any()):
            return x
        shift = shift.to(x.device)
        ys = torch.arange(h, device=x.device).view(1, h, 1) - shift[:, 1].view(b, 1, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w) - shift[:, 0].view(b, 1, 1)
        yi = _reflect(ys, h).expand(b, h, w).reshape(b, -1)
        xi = _reflect(xs, w).expand(b, h, w).reshape(b, -1)
        return _gather_pixels(x, yi, xi).reshape(x.shape)

    @staticmethod
    def _continuous_inverse(params: AugmentParams, batch: int, height: int, width: int) -> torch.Tensor | None:
        """[B, 3, 3] map from output to input pixel offsets (from the image centre), or None if unused.

        The content transform is xfrac . rotate_post . aniso . rotate_pre . scale; its inverse is
        composed factor by factor, each step's inverse multiplied on the right.
        """
        inverses: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {  # in the pipeline's order
            "scale": lambda s: _scale_2d(1 / s, 1 / s),
            "rotate_pre": lambda theta: _rotation_2d(-theta),
            "aniso": lambda a: _scale_2d(1 / a, a),
            "rotate_post": lambda theta: _rotation_2d(-theta),
            "xfrac": lambda t: _translate_2d(-t[:, 0] * width, -t[:, 1] * height),
        }
        present = [name for name in inverses if name in params]
        if not present:
            return None
        inv = torch.eye(3, dtype=torch.float64).repeat(batch, 1, 1)
        for name in present:
            inv = inv @ inverses[name](params[name].double())
        return inv

    def _resample(self, x: torch.Tensor, inverse: torch.Tensor) -> torch.Tensor:
        """Supersampled bilinear resampling of the samples whose transform is not the identity."""
        b, c, h, w = x.shape
        moved = ~(inverse == torch.eye(3, dtype=inverse.dtype)).flatten(1).all(dim=1)
        if not bool(moved.any()):
            return x
        idx = moved.nonzero().flatten()
        inv = inverse[idx]
        s = self.supersample
        sub = (torch.arange(s, dtype=torch.float64) + 0.5) / s - 0.5
        oy = (torch.arange(h, dtype=torch.float64) - (h - 1) / 2).view(h, 1, 1, 1) + sub.view(1, 1, s, 1)
        ox = (torch.arange(w, dtype=torch.float64) - (w - 1) / 2).view(1, w, 1, 1) + sub.view(1, 1, 1, s)
        oy, ox = torch.broadcast_tensors(oy, ox)  # [h, w, s, s]
        grid = torch.stack([ox.reshape(-1), oy.reshape(-1), torch.ones(oy.numel(), dtype=torch.float64)])
        src = inv @ grid  # [n, 3, h*w*s*s]
        sx = (src[:, 0] + (w - 1) / 2).to(x.device, torch.float32)
        sy = (src[:, 1] + (h - 1) / 2).to(x.device, torch.float32)
        idx = idx.to(x.device)
        taps = _sample_bilinear_reflect(x.index_select(0, idx), sy, sx).to(x.dtype)
        resampled = taps.reshape(len(idx), c, h, w, s * s).mean(dim=-1)
        return x.index_copy(0, idx, resampled)

    @staticmethod
    def _colour_matrix(params: AugmentParams, batch: int) -> torch.Tensor | None:
        """[B, 4, 4] homogeneous RGB transform (brightness, contrast, lumaflip, hue, saturation), or None."""
        if not any(name in params for name in COLOUR):
            return None
        eye4 = torch.eye(4, dtype=torch.float64)
        m = eye4.repeat(batch, 1, 1)
        v = _luma_axis().double()
        vv = torch.zeros(4, 4, dtype=torch.float64)
        vv[:3, :3] = torch.outer(v, v)
        if "brightness" in params:
            step = eye4.repeat(batch, 1, 1)
            step[:, :3, 3] = params["brightness"].double()[:, None]
            m = step @ m
        if "contrast" in params:
            step = eye4.repeat(batch, 1, 1)
            c = params["contrast"].double()
            step[:, 0, 0], step[:, 1, 1], step[:, 2, 2] = c, c, c
            m = step @ m
        if "lumaflip" in params:
            m = (eye4 - 2 * vv * params["lumaflip"].double().view(-1, 1, 1)) @ m
        if "hue" in params:
            theta = params["hue"].double().view(-1, 1, 1)
            cross = torch.zeros(4, 4, dtype=torch.float64)  # [v]_x: cross-product matrix of the luma axis
            cross[0, 1], cross[0, 2], cross[1, 2] = -v[2], v[1], -v[0]
            cross = cross - cross.T
            rot = theta.cos() * eye4 + theta.sin() * cross + (1 - theta.cos()) * vv
            rot[:, 3, :3] = 0
            rot[:, :3, 3] = 0
            rot[:, 3, 3] = 1
            m = rot @ m
        if "saturation" in params:
            s = params["saturation"].double().view(-1, 1, 1)
            m = (eye4 + (s - 1) * (eye4 - vv - _homogeneous_unit())) @ m  # exactly I where s == 1
        return m

    @staticmethod
    def _recolour(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
        """Apply the per-sample colour matrix to RGB images (samples with an identity matrix are left as is)."""
        changed = ~(matrix == torch.eye(4, dtype=matrix.dtype)).flatten(1).all(dim=1)
        if not bool(changed.any()):
            return x
        if x.shape[1] != 3:
            raise ValueError(f"colour augmentation needs RGB images, got {x.shape[1]} channels")
        idx = changed.nonzero().flatten().to(x.device)
        m = matrix.to(x.device, x.dtype)[idx]
        sel = x.index_select(0, idx)
        out = torch.einsum("bij,bjhw->bihw", m[:, :3, :3], sel) + m[:, :3, 3, None, None]
        return x.index_copy(0, idx, out)


class AdaController:
    """The ADA heuristic: every ``interval`` steps move p by sign(r_t - target) * images / (kimg * 1000).

    r_t is the mean of sign(D(real)) over the real logits accumulated since the last update (all
    ranks when ``reduce`` sums across them). The step makes p able to go from 0 to 1 in ``kimg``
    thousand images; p is clamped below at 0 and not above (probabilities use min(p, 1)).
    Pending sums are part of the state, so a snapshot taken between updates resumes exactly.
    """

    def __init__(self, augment: AdaptiveAugment, target: float = 0.6, interval: int = 4, kimg: float = 500.0) -> None:
        self.augment = augment
        self.target = target
        self.interval = interval
        self.kimg = kimg
        self.sign_sum = 0.0
        self.sign_count = 0.0

    def accumulate(self, real_logits: torch.Tensor) -> None:
        """Add the signs of a chunk's real logits (the Dmain phase's) to the pending statistic."""
        signs = real_logits.detach().float().sign()
        self.sign_sum += float(signs.sum())
        self.sign_count += float(signs.numel())

    def update(self, batch: int, reduce: Callable[[torch.Tensor], torch.Tensor] | None = None) -> float | None:
        """Adjust p after ``interval`` steps of ``batch`` images; returns r_t (None if nothing was seen).

        ``reduce`` sums a float64 tensor over ranks (the loop's all-reduce); every rank must call it.
        """
        totals = torch.tensor([self.sign_sum, self.sign_count], dtype=torch.float64)
        if reduce is not None:
            totals = reduce(totals).cpu()
        self.sign_sum, self.sign_count = 0.0, 0.0
        total, count = float(totals[0]), float(totals[1])
        if count <= 0:
            return None
        rt = total / count
        adjust = float(np.sign(rt - self.target)) * batch * self.interval / (self.kimg * 1000)
        p = self.augment.p
        p.copy_((p + adjust).clamp(min=0.0))
        return rt

    def state_dict(self) -> dict[str, float]:
        return {"sign_sum": self.sign_sum, "sign_count": self.sign_count}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.sign_sum = float(state.get("sign_sum", 0.0))
        self.sign_count = float(state.get("sign_count", 0.0))

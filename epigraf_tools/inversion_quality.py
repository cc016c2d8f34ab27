"""How good an inversion is, when the truth is known: novel-view PSNR, volume IoU, and PTI drift.

Used by the tests and benchmarks/bench_invert.py on renders of known seeds; each compares two
(generator, ws) pairs, so the same code measures a W, W+ or tuned result against the true seed.
Renders are deterministic (no ray jitter) so differences come from the latents and weights only.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from .camera import Camera
from .inversion_losses import psnr
from .isolevel import default_level
from .latents import ws_from_seeds
from .models import Generator
from .rendering import RenderSettings, render_views
from .sampling import background_ws, planes_for
from .volume import extract_density


def render_deterministic(G: Generator, ws: torch.Tensor, cameras: Sequence[Camera]) -> torch.Tensor:
    """ws [1, num_ws, w_dim] -> images [V, 3, H, W] in [-1, 1], without ray jitter."""
    ws = ws.to(G.device)
    planes = planes_for(G, ws)
    out = render_views(G, planes, list(cameras), RenderSettings(deterministic=True), bg_ws=background_ws(G, ws))
    return out["image"][0].clamp(-1, 1)


def yaw_offsets(camera: Camera, degrees: Sequence[float]) -> list[Camera]:
    """The camera turned by each yaw offset (degrees) around the object."""
    return [camera.replace(yaw=math.remainder(camera.yaw + math.radians(d), 2 * math.pi)) for d in degrees]


def view_psnr(
    G_a: Generator, ws_a: torch.Tensor, G_b: Generator, ws_b: torch.Tensor, cameras: Sequence[Camera]
) -> list[float]:
    """PSNR (dB) per camera between the renders of (G_a, ws_a) and (G_b, ws_b)."""
    a, b = render_deterministic(G_a, ws_a, cameras), render_deterministic(G_b, ws_b, cameras)
    return [psnr(a[i : i + 1], b[i : i + 1]) for i in range(len(cameras))]


def occupancy(G: Generator, ws: torch.Tensor, resolution: int = 64) -> np.ndarray:
    """bool [R, R, R]: voxels of the tri-plane cube denser than the mesh level export-mesh uses."""
    volume = extract_density(G, ws.to(G.device), resolution=resolution, method="naive")
    return volume > default_level(G.config, "raw")


def volume_iou(G_a: Generator, ws_a: torch.Tensor, G_b: Generator, ws_b: torch.Tensor, resolution: int = 64) -> float:
    """Intersection over union of the two occupied volumes (1: the same solid)."""
    a, b = occupancy(G_a, ws_a, resolution), occupancy(G_b, ws_b, resolution)
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def tuning_drift(original: Generator, tuned: Generator, seeds: Sequence[int], camera: Camera) -> list[float]:
    """PSNR (dB) of each seed's render by the tuned generator against the original's (high: little drift)."""
    ws, _ = ws_from_seeds(original, list(seeds))
    return [view_psnr(original, ws[i : i + 1], tuned, ws[i : i + 1], [camera])[0] for i in range(len(seeds))]

"""Camera poses for fake images: the dataset's own poses ('custom') or a parametric distribution.

Parametric distributions follow the official ``sample_camera_angles``: yaw (theta) and pitch (phi)
around (horizontal_mean, vertical_mean) with spreads horizontal_stddev / vertical_stddev:
- 'uniform': theta, phi uniform in mean +- stddev;
- 'normal' (alias 'gaussian'): Gaussian with those means and standard deviations;
- 'spherical_uniform': theta uniform in mean +- stddev, and phi = arccos(1 - 2 v) with v uniform in
  (vertical_mean +- vertical_stddev) / pi, so that directions are uniform on the sphere (the whole
  sphere for the Megascans settings: stddevs pi and pi/2 around (0, pi/2)).
Pitch is finally clamped to [1e-5, pi - 1e-5]; roll is 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from epigraf_tools.models.cameras import PITCH_EPS

DISTRIBUTIONS = ("custom", "uniform", "normal", "gaussian", "spherical_uniform")


@dataclass
class CameraDistribution:
    """Where fake cameras come from ('custom' = the poses of random dataset images)."""

    dist: str = "custom"
    horizontal_mean: float = 0.0
    horizontal_stddev: float = math.pi
    vertical_mean: float = math.pi / 2
    vertical_stddev: float = math.pi / 2

    def __post_init__(self) -> None:
        if self.dist not in DISTRIBUTIONS:
            raise ValueError(f"camera distribution must be one of {', '.join(DISTRIBUTIONS)}, got {self.dist!r}")

    @property
    def mean_pose(self) -> list[float]:
        return [self.horizontal_mean, self.vertical_mean, 0.0]


def sample_camera_angles(dist: CameraDistribution, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """[n, 3] (yaw, pitch, roll) drawn on the CPU from a parametric distribution."""
    if dist.dist == "custom":
        raise ValueError("'custom' poses come from the dataset, not from a distribution")

    def uniform() -> torch.Tensor:
        return torch.rand(n, 1, generator=generator) - 0.5

    h_mean, h_std, v_mean, v_std = (
        dist.horizontal_mean,
        dist.horizontal_stddev,
        dist.vertical_mean,
        dist.vertical_stddev,
    )
    if dist.dist == "uniform":
        theta = uniform() * 2 * h_std + h_mean
        phi = uniform() * 2 * v_std + v_mean
    elif dist.dist in ("normal", "gaussian"):
        theta = torch.randn(n, 1, generator=generator) * h_std + h_mean
        phi = torch.randn(n, 1, generator=generator) * v_std + v_mean
    else:
        theta = uniform() * 2 * h_std + h_mean
        v = (uniform() * 2 * (v_std / math.pi) + v_mean / math.pi).clamp(1e-5, 1 - 1e-5)
        phi = torch.arccos(1 - 2 * v)
    phi = phi.clamp(PITCH_EPS, math.pi - PITCH_EPS)
    return torch.cat([theta, phi, torch.zeros_like(theta)], dim=1)

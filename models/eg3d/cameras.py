"""EG3D camera labels: the 25 numbers (cam2world 4x4 | normalised intrinsics 3x3, row-major).

Conventions (as the official EG3D checkpoints were trained with): OpenCV camera axes (x right,
y down, z forward), world y up. A pose is given by yaw ``h`` and pitch ``v`` (both pi/2 = frontal);
the camera sits on a sphere of ``radius`` around the world origin (not around the pivot) and looks
at ``lookat``. Pitch goes through phi = arccos(1 - 2 v / pi), which makes uniform v area-uniform on
the sphere. The focal length uses the rounded constants 3.14159 and 1.414 because the official
labels (and so the conditioning the mapping network learned) were computed with them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

# Pitch is clamped to [eps, pi - eps] so the look-at frame stays defined.
PITCH_EPS = 1e-5
# The official gen_samples.py declares its --fov-deg option as an int, so it renders at 18 degrees.
DEFAULT_FOV_DEG = 18
DEFAULT_RADIUS = 2.7
DEFAULT_PIVOT = (0.0, 0.0, 0.2)


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / torch.norm(v, dim=-1, keepdim=True)


def camera_origin(yaw: torch.Tensor, pitch: torch.Tensor, radius: float = DEFAULT_RADIUS) -> torch.Tensor:
    """[B] yaw, pitch (radians) -> [B, 3] camera centres on the sphere of ``radius``."""
    v = pitch.clamp(PITCH_EPS, math.pi - PITCH_EPS) / math.pi
    phi = torch.arccos(1 - 2 * v)
    theta = yaw
    x = radius * torch.sin(phi) * torch.cos(math.pi - theta)
    z = radius * torch.sin(phi) * torch.sin(math.pi - theta)
    y = radius * torch.cos(phi)
    return torch.stack([x, y, z], dim=-1)


def cam2world_from_forward(forward: torch.Tensor, origin: torch.Tensor) -> torch.Tensor:
    """[B, 3] viewing directions and centres -> [B, 4, 4] OpenCV cam2world (columns right, down-is-+y, forward)."""
    forward = _unit(forward)
    world_up = torch.tensor([0.0, 1.0, 0.0], dtype=forward.dtype, device=forward.device).expand_as(forward)
    right = -_unit(torch.cross(world_up, forward, dim=-1))
    up = _unit(torch.cross(forward, right, dim=-1))
    c2w = torch.eye(4, dtype=forward.dtype, device=forward.device).repeat(forward.shape[0], 1, 1)
    c2w[:, :3, :3] = torch.stack([right, up, forward], dim=-1)
    c2w[:, :3, 3] = origin
    return c2w


def look_at_pose(
    yaw: float | torch.Tensor,
    pitch: float | torch.Tensor,
    lookat: Sequence[float] | torch.Tensor = DEFAULT_PIVOT,
    radius: float = DEFAULT_RADIUS,
) -> torch.Tensor:
    """Yaw/pitch (scalars or [B]) -> [B, 4, 4] cam2world looking at ``lookat`` (float32)."""
    yaw_t = torch.as_tensor(yaw, dtype=torch.float32).reshape(-1)
    pitch_t = torch.as_tensor(pitch, dtype=torch.float32).reshape(-1)
    yaw_t, pitch_t = torch.broadcast_tensors(yaw_t, pitch_t)
    origin = camera_origin(yaw_t, pitch_t, radius)
    target = torch.as_tensor(lookat, dtype=torch.float32).reshape(1, 3)
    return cam2world_from_forward(target - origin, origin)


def fov_to_intrinsics(fov_degrees: float) -> torch.Tensor:
    """Field of view (degrees) -> [3, 3] intrinsics normalised by the image size (principal point 0.5)."""
    focal = float(1 / (math.tan(fov_degrees * 3.14159 / 360) * 1.414))
    return torch.tensor([[focal, 0, 0.5], [0, focal, 0.5], [0, 0, 1]], dtype=torch.float32)


def intrinsics_to_fov(intrinsics: torch.Tensor) -> torch.Tensor:
    """Inverse of ``fov_to_intrinsics`` (from fx): [..., 3, 3] -> [...] degrees."""
    fx = intrinsics[..., 0, 0]
    return torch.atan(1 / (fx * 1.414)) * 360 / 3.14159


def make_label(cam2world: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """[B, 4, 4] cam2world and [3, 3] or [B, 3, 3] intrinsics -> [B, 25] labels."""
    b = cam2world.shape[0]
    intr = intrinsics.reshape(-1, 9).expand(b, 9) if intrinsics.ndim == 2 else intrinsics.reshape(b, 9)
    return torch.cat([cam2world.reshape(b, 16), intr.to(cam2world.dtype)], dim=1)


def split_label(label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[B, 25] labels -> ([B, 4, 4] cam2world, [B, 3, 3] intrinsics); extra columns are ignored."""
    if label.ndim != 2 or label.shape[1] < 25:
        raise ValueError(f"camera labels must have shape [B, 25], got {list(label.shape)}")
    return label[:, :16].reshape(-1, 4, 4), label[:, 16:25].reshape(-1, 3, 3)


def pose_label(
    yaw: float | torch.Tensor,
    pitch: float | torch.Tensor,
    fov_degrees: float = DEFAULT_FOV_DEG,
    lookat: Sequence[float] | torch.Tensor = DEFAULT_PIVOT,
    radius: float = DEFAULT_RADIUS,
) -> torch.Tensor:
    """Yaw/pitch (+ fov, pivot, radius) -> [B, 25] labels, as the official sampling scripts build them."""
    return make_label(look_at_pose(yaw, pitch, lookat, radius), fov_to_intrinsics(fov_degrees))

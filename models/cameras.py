"""EpiGRAF camera convention and ray generation: the tensor pose math the networks use.

(The user-facing, validated ``Camera`` type is ``epigraf_tools.camera``; it calls these functions.)

Angles are [yaw, pitch, roll] in radians; roll is ignored. Pitch is the polar angle from world +y
(pi/2 is the equator), yaw the azimuth in the x-z plane from +x towards +z, so the frontal camera
(yaw 0, pitch pi/2) sits at (radius, 0, 0) and looks towards -x. The camera looks at the origin with
world +y up; its frame is OpenGL-like (x right, y up, looking down -z).

Rays pass through pixel centres that span NDC [-1, 1] exactly (row 0 is the top, y = +1), the
field of view (degrees) is measured between the outermost pixel centres, and ray directions are
unit vectors, so depths are Euclidean distances from the camera centre.
"""

from __future__ import annotations

import math

import torch

# Pitch is kept in [eps, pi - eps] so the look-at frame stays defined (the one definition: the
# toolkit's Camera and training's pose sampler import it).
PITCH_EPS = 1e-5


def clamp_pitch(angles: torch.Tensor) -> torch.Tensor:
    """Return a copy of [B, 3] angles with pitch clamped to [1e-5, pi - 1e-5] (never in place)."""
    angles = angles.clone()
    angles[:, 1] = angles[:, 1].clamp(PITCH_EPS, math.pi - PITCH_EPS)
    return angles


def camera_origins(angles: torch.Tensor, radius: float | torch.Tensor = 1.0) -> torch.Tensor:
    """[B, 3] angles -> [B, 3] camera centres r (sin p cos y, cos p, sin p sin y)."""
    yaw, pitch = angles[:, 0], angles[:, 1]
    radius = torch.as_tensor(radius, dtype=angles.dtype, device=angles.device).reshape(-1)
    return radius.unsqueeze(1) * torch.stack([pitch.sin() * yaw.cos(), pitch.cos(), pitch.sin() * yaw.sin()], dim=1)


def look_at_cam2world(origins: torch.Tensor, target: torch.Tensor | None = None) -> torch.Tensor:
    """[B, 3] camera centres -> [B, 4, 4] cam2world with columns (-left, up, -forward, origin)."""
    if target is None:
        target = torch.zeros_like(origins)
    forward = torch.nn.functional.normalize(target - origins, dim=-1)
    world_up = torch.tensor([0.0, 1.0, 0.0], dtype=origins.dtype, device=origins.device).expand_as(forward)
    left = torch.nn.functional.normalize(torch.cross(world_up, forward, dim=-1), dim=-1)
    up = torch.nn.functional.normalize(torch.cross(forward, left, dim=-1), dim=-1)
    rot = torch.stack([-left, up, -forward], dim=-1)
    c2w = torch.eye(4, dtype=origins.dtype, device=origins.device).repeat(origins.shape[0], 1, 1)
    c2w[:, :3, :3] = rot
    c2w[:, :3, 3] = origins
    return c2w


def cam2world_from_angles(angles: torch.Tensor, radius: float | torch.Tensor = 1.0) -> torch.Tensor:
    """[B, 3] (yaw, pitch, roll) -> [B, 4, 4] cam2world looking at the origin (pitch clamped)."""
    return look_at_cam2world(camera_origins(clamp_pitch(angles), radius))


def ndc_pixel_grid(
    height: int, width: int, device: torch.device | str | None = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Pixel-centre NDC coordinates [H*W, 2] in row-major order (x left to right, y +1 at the top)."""
    xs = torch.linspace(-1, 1, width, device=device, dtype=dtype)
    ys = torch.linspace(1, -1, height, device=device, dtype=dtype)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def apply_patch(ndc: torch.Tensor, scales: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Map the [-1, 1] pixel grid into a patch: x' = (x + 1) s - 1 + 2 o (per sample).

    ndc: [N, 2]; scales, offsets: [B, 2] in [0, 1] image units (offset y counts from the bottom,
    because NDC y points up). Returns [B, N, 2].
    """
    return (ndc.unsqueeze(0) + 1) * scales.unsqueeze(1) - 1 + 2 * offsets.unsqueeze(1)


def camera_ray_directions(ndc: torch.Tensor, fov_degrees: float | torch.Tensor) -> torch.Tensor:
    """NDC [B, N, 2] (or [N, 2]) -> unit camera-space directions [B, N, 3] looking down -z."""
    if ndc.ndim == 2:
        ndc = ndc.unsqueeze(0)
    fov = torch.as_tensor(fov_degrees, dtype=ndc.dtype, device=ndc.device).reshape(-1, 1, 1)
    z = -1.0 / torch.tan(fov / 360 * 2 * math.pi * 0.5)  # same rounding as the official code
    z = z.expand(ndc.shape[0], ndc.shape[1], 1)
    return torch.nn.functional.normalize(torch.cat([ndc, z], dim=-1), dim=-1)


def generate_rays(
    cam2world: torch.Tensor,
    fov_degrees: float | torch.Tensor,
    height: int,
    width: int,
    patch_scales: torch.Tensor | None = None,
    patch_offsets: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """World-space rays for full images or patches.

    cam2world: [B, 4, 4]. Returns (origins [B, H*W, 3], unit directions [B, H*W, 3],
    camera-space directions [B, H*W, 3]). With patch parameters ([B, 2] each) the H x W rays cover
    only that patch of the image, exactly as the patch-wise training renders fake patches.
    """
    b = cam2world.shape[0]
    ndc = ndc_pixel_grid(height, width, device=cam2world.device, dtype=cam2world.dtype)
    if patch_scales is not None:
        ndc = apply_patch(ndc, patch_scales.to(ndc.dtype), patch_offsets.to(ndc.dtype))
    else:
        ndc = ndc.unsqueeze(0).expand(b, -1, -1)
    dirs_cam = camera_ray_directions(ndc, fov_degrees).expand(b, -1, -1)
    rot = cam2world[:, :3, :3]
    dirs_world = torch.einsum("bij,bnj->bni", rot, dirs_cam)
    origins = cam2world[:, :3, 3].unsqueeze(1).expand(-1, dirs_cam.shape[1], -1)
    return origins, dirs_world, dirs_cam

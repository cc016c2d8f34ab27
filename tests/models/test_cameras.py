"""Camera poses and ray/patch geometry against hand-computed values."""

from __future__ import annotations

import math

import torch

from epigraf_tools.models.cameras import (
    apply_patch,
    cam2world_from_angles,
    camera_origins,
    generate_rays,
    ndc_pixel_grid,
)


def test_frontal_camera_matrix():
    c2w = cam2world_from_angles(torch.tensor([[0.0, math.pi / 2, 0.0]]), radius=1.0)[0]
    expected = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(c2w, expected, atol=1e-6, rtol=0)


def test_yaw_moves_camera_towards_plus_z_and_pitch_is_polar_from_plus_y():
    origins = camera_origins(torch.tensor([[math.pi / 2, math.pi / 2, 0.0], [0.0, 0.3, 0.0]]), 2.0)
    torch.testing.assert_close(origins[0], torch.tensor([0.0, 0.0, 2.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(origins[1], torch.tensor([2 * math.sin(0.3), 2 * math.cos(0.3), 0.0]), atol=1e-6, rtol=0)


def test_cameras_look_at_origin_with_orthonormal_frames():
    angles = torch.tensor([[0.3, 1.2, 0.0], [-2.0, 0.4, 0.0], [1.0, 2.9, 0.7]])
    c2w = cam2world_from_angles(angles, radius=1.5)
    rot = c2w[:, :3, :3]
    torch.testing.assert_close(rot.transpose(1, 2) @ rot, torch.eye(3).expand(3, 3, 3), atol=1e-5, rtol=0)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(3), atol=1e-5)
    forward = -rot[:, :, 2]  # camera looks down -z
    to_origin = -c2w[:, :3, 3] / c2w[:, :3, 3].norm(dim=1, keepdim=True)
    torch.testing.assert_close(forward, to_origin, atol=1e-5, rtol=0)


def test_roll_is_ignored_and_pitch_is_clamped_without_touching_input():
    a = torch.tensor([[0.2, 0.0, 0.0]])
    b = torch.tensor([[0.2, 0.0, 1.3]])
    torch.testing.assert_close(cam2world_from_angles(a), cam2world_from_angles(b))
    assert a[0, 1].item() == 0.0  # unlike the official code, the caller's tensor is not clamped in place
    assert torch.isfinite(cam2world_from_angles(a)).all()


def test_pixel_grid_spans_ndc_at_pixel_centres():
    g = ndc_pixel_grid(3, 4)
    assert g.shape == (12, 2)
    torch.testing.assert_close(g[0], torch.tensor([-1.0, 1.0]))  # top-left
    torch.testing.assert_close(g[3], torch.tensor([1.0, 1.0]))  # top-right
    torch.testing.assert_close(g[-1], torch.tensor([1.0, -1.0]))  # bottom-right


def test_fov_is_measured_between_outermost_pixel_centres():
    c2w = cam2world_from_angles(torch.tensor([[0.0, math.pi / 2, 0.0]]))
    _, _, d_cam = generate_rays(c2w, 30.0, 5, 5)
    left, right = d_cam[0, 10], d_cam[0, 14]  # middle row, first and last pixel
    angle = torch.acos((left * right).sum()).item()
    assert abs(math.degrees(angle) - 30.0) < 1e-4


def test_patch_maps_unit_grid_into_its_subwindow():
    ndc = ndc_pixel_grid(2, 2)
    out = apply_patch(ndc, torch.tensor([[0.5, 0.5]]), torch.tensor([[0.5, 0.0]]))[0]
    # right half horizontally (x in [0, 1]); bottom half vertically (offset y counts from the bottom)
    torch.testing.assert_close(out[:, 0].unique(), torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(out[:, 1].unique(), torch.tensor([-1.0, 0.0]))


def test_full_scale_patch_equals_full_image_rays():
    c2w = cam2world_from_angles(torch.tensor([[0.4, 1.3, 0.0]]))
    full = generate_rays(c2w, 12.0, 8, 8)
    patch = generate_rays(c2w, 12.0, 8, 8, torch.ones(1, 2), torch.zeros(1, 2))
    for a, b in zip(full, patch, strict=True):
        torch.testing.assert_close(a, b)

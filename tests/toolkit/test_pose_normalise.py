"""epigraf_tools/pose_normalise.py: look-at point, up axis, scale, and the refusal of broken poses."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from epigraf_tools.models.cameras import cam2world_from_angles
from epigraf_tools.pose_normalise import (
    PoseError,
    check_angles,
    choose_up,
    closest_point_to_axes,
    orbit_from_cam2world,
    rotation_taking,
)


def _orbit(n: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    angles = np.stack([rng.uniform(-3, 3, n), rng.uniform(1.2, 1.9, n), np.zeros(n)], axis=1)
    c2w = cam2world_from_angles(torch.from_numpy(angles), 1.0).numpy()
    return angles, c2w


def _names(n: int) -> list[str]:
    return [f"v{i}.png" for i in range(n)]


def test_moved_scaled_scene_comes_back_on_the_unit_orbit() -> None:
    angles, c2w = _orbit()
    moved = c2w.copy()
    moved[:, :3, 3] = 4.0 * moved[:, :3, 3] + np.array([1.0, -2.0, 0.5])
    orbit = orbit_from_cam2world(moved, _names(6))
    np.testing.assert_allclose(orbit.angles, angles, atol=1e-9)
    np.testing.assert_allclose(orbit.look_at, [1.0, -2.0, 0.5], atol=1e-9)
    np.testing.assert_allclose(orbit.radii, 1.0, atol=1e-9)
    assert orbit.stats["max_off_axis_degrees"] < 1e-5 and orbit.stats["max_roll_degrees"] < 1e-5


def test_roll_and_off_axis_are_measured() -> None:
    _, c2w = _orbit()
    tilt = math.radians(3.0)
    roll = np.array([[math.cos(tilt), -math.sin(tilt), 0], [math.sin(tilt), math.cos(tilt), 0], [0, 0, 1]])
    rolled = c2w.copy()
    rolled[0, :3, :3] = rolled[0, :3, :3] @ roll  # about the camera's own viewing axis
    orbit = orbit_from_cam2world(rolled, _names(6))
    assert abs(orbit.stats["max_roll_degrees"] - 3.0) < 1e-6


def test_closest_point_and_parallel_axes() -> None:
    origins = np.array([[2.0, 0, 0], [0, 0, 2.0], [0, 2.0, 0]])
    point, spread = closest_point_to_axes(origins, -origins / 2)
    np.testing.assert_allclose(point, 0, atol=1e-12)
    assert spread > 0.1
    _, spread = closest_point_to_axes(origins, np.tile([0, 0, -1.0], (3, 1)))
    assert spread < 1e-9


def test_rotation_taking_and_choose_up() -> None:
    for u in (np.array([0, 0, 1.0]), np.array([0, -1.0, 0]), np.array([1.0, 0, 0]), np.array([0.6, 0.0, 0.8])):
        r = rotation_taking(u, np.array([0, 1.0, 0]))
        np.testing.assert_allclose(r @ u, [0, 1, 0], atol=1e-12)
        np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-12)
        assert abs(np.linalg.det(r) - 1) < 1e-12
    np.testing.assert_allclose(rotation_taking(np.array([0, -1.0, 0]), np.array([0, 1.0, 0])), np.diag([1, -1, -1]))
    ups = np.array([[0.1, 0.0, 0.99], [-0.1, 0.1, 0.99]])
    assert choose_up(ups, "auto")[1] == "+z (auto)"
    tilted = np.array([[0.0, 0.7, 0.7]])
    assert choose_up(tilted, "auto")[1] == "mean of camera up vectors"
    with pytest.raises(PoseError, match="unknown up axis"):
        choose_up(ups, "up")


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda m: m[1].__setitem__((0, 3), np.nan), "NaN"),
        (lambda m: m[2].__setitem__((slice(0, 3), 0), 2 * m[2][:3, 0]), "not a rotation"),
        (lambda m: m[3].__setitem__(slice(None), m[1]), "v1.png and v3.png have the same camera pose"),
        (lambda m: m[4].__setitem__((slice(0, 3), slice(0, 3)), -m[4][:3, :3] @ np.diag([1, -1, 1])), "faces away"),
    ],
)
def test_broken_poses_are_refused(break_it, message: str) -> None:
    _, c2w = _orbit()
    break_it(c2w)
    with pytest.raises(PoseError, match=message):
        orbit_from_cam2world(c2w, _names(6))


def test_parallel_cameras_are_refused() -> None:
    c2w = np.tile(np.eye(4), (4, 1, 1))
    c2w[:, 0, 3] = np.arange(4.0)  # a forward-facing rig: all looking down -z
    with pytest.raises(PoseError, match="parallel"):
        orbit_from_cam2world(c2w, _names(4))


def test_check_angles() -> None:
    with pytest.raises(PoseError, match="all 3 yaws are zero"):
        check_angles(np.array([[0.0, 1.0, 0], [0.0, 1.2, 0], [0.0, 1.4, 0]]), _names(3))
    same = np.array([[0.5, 1.0, 0], [0.5, 1.0, 0]])
    with pytest.raises(PoseError, match="same camera angles"):
        check_angles(same, _names(2))
    check_angles(same, _names(2), allow_duplicates=True)
    with pytest.raises(PoseError, match="NaN"):
        check_angles(np.array([[0.5, np.inf, 0], [0.1, 1.0, 0]]), _names(2))

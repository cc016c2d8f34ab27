"""Turn a captured scene's camera matrices into EpiGRAF's orbit: [yaw, pitch, roll] around the origin.

EpiGRAF renders every view from a camera on a sphere around the world origin, looking at it with
world +y up (models/cameras.py). Captured or exported poses (NeRF transforms.json, COLMAP, EG3D)
live in their own world: the object sits anywhere, at any scale, with any axis up. This module
finds the EpiGRAF frame of such a scene:

- the look-at point: the point closest, in least squares, to every camera's optical axis (the
  cameras of an object-centred capture all look at roughly one point);
- up: the world axis (or, when no axis is close, the direction) the cameras' up vectors agree on;
- scale: the median camera distance becomes ``radius`` (1 by default), so EpiGRAF's ray range and
  cube scale keep their meaning whatever units the capture used.

The angles come from each camera's position in that frame (yaw = azimuth from +x towards +z, pitch =
polar angle from +y), which is what EpiGRAF needs to re-render the view; how far each real camera
looks past the origin or rolls is measured and reported, because EpiGRAF cannot represent it.
Broken input (NaN, a matrix that is not a rotation, two identical cameras, cameras facing away
from each other's target or all parallel) is refused with a ``PoseError`` naming the view.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import EpigrafError

UP_CHOICES = ("auto", "+x", "-x", "+y", "-y", "+z", "-z", "mean")
# 'auto' snaps the cameras' mean up vector to the nearest world axis when it lies within this angle.
SNAP_DEGREES = 20.0
_AXES = {"+x": (1, 0, 0), "-x": (-1, 0, 0), "+y": (0, 1, 0), "-y": (0, -1, 0), "+z": (0, 0, 1), "-z": (0, 0, -1)}
ROTATION_TOLERANCE = 1e-3  # |R^T R - I| and |det R - 1| above this: not a rotation
# Smallest eigenvalue of the mean axis-projection matrix below this: the optical axes are (nearly)
# parallel (a spread under ~0.6 degrees), so no point is "looked at" by all of them.
PARALLEL_TOLERANCE = 1e-4


class PoseError(EpigrafError):
    """Camera poses that cannot become an EpiGRAF orbit (the message names the view and the problem)."""


@dataclass
class OrbitPoses:
    """Poses in the EpiGRAF frame.

    angles: [N, 3] (yaw, pitch, 0) radians; radii: [N] camera distances from the origin;
    transform: [4, 4] source world -> EpiGRAF world (x' = transform @ [x, 1], rotation times scale);
    look_at: [3] the source-world point that became the origin; up: [3] the source-world up direction.
    """

    angles: np.ndarray
    radii: np.ndarray
    transform: np.ndarray
    look_at: np.ndarray
    up: np.ndarray
    up_method: str
    stats: dict[str, float] = field(default_factory=dict)


def check_rotations(c2w: np.ndarray, names: list[str]) -> None:
    """Refuse non-finite matrices and rotation parts that are not proper rotations. c2w: [N, 4, 4]."""
    for i, name in enumerate(names):
        m = c2w[i]
        if not np.all(np.isfinite(m)):
            raise PoseError(f"the pose of {name} contains NaN or infinite values")
        rot = m[:3, :3]
        err = float(np.abs(rot.T @ rot - np.eye(3)).max())
        det = float(np.linalg.det(rot))
        if err > ROTATION_TOLERANCE or abs(det - 1) > ROTATION_TOLERANCE:
            raise PoseError(
                f"the pose of {name} is not a rotation plus a translation (|R^T R - I| = {err:.3g}, "
                f"det R = {det:.4g}); scaled, sheared or mirrored camera matrices are not camera poses"
            )


def check_duplicates(keys: np.ndarray, names: list[str], what: str, hint: str = "") -> None:
    """Refuse two rows of ``keys`` [N, K] that are equal after rounding to 1e-6 (names say which)."""
    seen: dict[bytes, int] = {}
    rounded = np.round(np.asarray(keys, np.float64), 6) + 0.0  # + 0.0 folds -0.0 into 0.0
    for i, row in enumerate(rounded):
        j = seen.setdefault(row.tobytes(), i)
        if j != i:
            raise PoseError(f"{names[j]} and {names[i]} have the same {what}{hint}")


def closest_point_to_axes(origins: np.ndarray, forwards: np.ndarray) -> tuple[np.ndarray, float]:
    """Least-squares point nearest to all lines origin + t forward ([N, 3] each, forwards unit).

    Returns (point [3], smallest eigenvalue of the mean projection matrix: near 0 means parallel axes).
    """
    proj = np.eye(3)[None] - forwards[:, :, None] * forwards[:, None, :]  # [N, 3, 3] onto each axis' normal plane
    a = proj.mean(axis=0)
    b = (proj @ origins[:, :, None]).mean(axis=0)[:, 0]
    smallest = float(np.linalg.eigvalsh(a)[0])
    if smallest < PARALLEL_TOLERANCE:
        return np.zeros(3), smallest
    return np.linalg.solve(a, b), smallest


def rotation_taking(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The smallest rotation [3, 3] mapping unit vector u onto unit vector v (a half turn when opposite)."""
    axis = np.cross(u, v)
    s, c = float(np.linalg.norm(axis)), float(u @ v)
    if s < 1e-12:
        if c > 0:
            return np.eye(3)
        # Opposite: a half turn about the axis perpendicular to u nearest to x (z when u is along x),
        # so a y-down world (COLMAP's habit) comes back by flipping y and z, with x kept.
        ref = np.array([1.0, 0.0, 0.0] if abs(u[0]) < 0.9 else [0.0, 0.0, 1.0])
        perp = ref - (ref @ u) * u
        perp /= np.linalg.norm(perp)
        return 2 * np.outer(perp, perp) - np.eye(3)
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx


def choose_up(camera_ups: np.ndarray, up: str) -> tuple[np.ndarray, str]:
    """The source-world up direction [3] and how it was chosen.

    camera_ups: [N, 3] each camera's up vector in the source world (OpenGL column 1).
    'auto': their mean, snapped to the nearest world axis when within ``SNAP_DEGREES`` (so a y-up or
    z-up scene comes out exact), else the mean itself; 'mean': always the mean; '+z' etc.: that axis.
    """
    if up not in UP_CHOICES:
        raise PoseError(f"unknown up axis {up!r}; choose from {', '.join(UP_CHOICES)}")
    if up in _AXES:
        return np.array(_AXES[up], np.float64), up
    mean = camera_ups.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-6:
        raise PoseError(
            "the cameras' up vectors cancel out, so the up axis is unknown; pass it as up=+z (or another axis)"
        )
    mean = mean / norm
    if up == "auto":
        name, axis = max(_AXES.items(), key=lambda item: float(mean @ np.array(item[1])))
        if math.degrees(math.acos(min(1.0, float(mean @ np.array(axis))))) <= SNAP_DEGREES:
            return np.array(axis, np.float64), f"{name} (auto)"
    return mean, "mean of camera up vectors"


def orbit_from_cam2world(
    c2w: np.ndarray, names: list[str], up: str = "auto", radius: float = 1.0, allow_duplicates: bool = False
) -> OrbitPoses:
    """Recentre, level and scale OpenGL cam2world matrices [N, 4, 4] into EpiGRAF angles (see module doc)."""
    c2w = np.asarray(c2w, np.float64)
    check_rotations(c2w, names)
    if not allow_duplicates:
        check_duplicates(c2w[:, :3, :4].reshape(len(names), -1), names, "camera pose", DUPLICATE_HINT)
    origins, forwards, ups = c2w[:, :3, 3], -c2w[:, :3, 2], c2w[:, :3, 1]
    centre, spread = closest_point_to_axes(origins, forwards)
    if spread < PARALLEL_TOLERANCE:
        raise PoseError(
            "the cameras' optical axes are (nearly) parallel, so there is no object they all look at; EpiGRAF "
            "needs cameras around an object (forward-facing captures cannot be imported)"
        )
    to_centre = centre - origins
    facing = np.einsum("ni,ni->n", to_centre, forwards)
    if (facing <= 0).any():
        i = int(np.argmax(facing <= 0))
        raise PoseError(f"the camera of {names[i]} faces away from the point the other cameras look at")
    up_dir, up_method = choose_up(ups, up)
    rot = rotation_taking(up_dir, np.array([0.0, 1.0, 0.0]))
    dists = np.linalg.norm(to_centre, axis=1)
    scale = radius / float(np.median(dists))
    transform = np.eye(4)
    transform[:3, :3] = scale * rot
    transform[:3, 3] = -scale * rot @ centre
    positions = (origins - centre) @ (scale * rot).T
    radii = np.linalg.norm(positions, axis=1)
    d = positions / radii[:, None]
    pitch = np.arccos(np.clip(d[:, 1], -1.0, 1.0))
    yaw = np.arctan2(d[:, 2], d[:, 0])
    angles = np.stack([yaw, pitch, np.zeros_like(yaw)], axis=1)
    new_forward = forwards @ rot.T
    new_right = c2w[:, :3, 0] @ rot.T
    stats = {
        "scale": scale,
        "radius_min": float(radii.min()),
        "radius_max": float(radii.max()),
        "max_off_axis_degrees": float(np.degrees(np.arccos(np.clip(-(new_forward * d).sum(1), -1, 1))).max()),
        "max_roll_degrees": float(np.abs(_roll_degrees(new_right, d)).max()),
        "axis_miss_rms": float(np.sqrt(np.mean(_axis_miss(origins, forwards, centre) ** 2)) * scale),
    }
    return OrbitPoses(angles, radii, transform, centre, up_dir, up_method, stats)


DUPLICATE_HINT = " (a camera listed twice?); pass allow_duplicate_poses=True if different objects share views"


def _axis_miss(origins: np.ndarray, forwards: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Distance [N] of ``point`` from each optical axis."""
    rel = point - origins
    return np.linalg.norm(rel - np.einsum("ni,ni->n", rel, forwards)[:, None] * forwards, axis=1)


def _roll_degrees(right: np.ndarray, back: np.ndarray) -> np.ndarray:
    """Signed roll [N] of each camera's right vector about its viewing direction, relative to world +y up."""
    world_up = np.array([0.0, 1.0, 0.0])
    ideal_right = np.cross(world_up, back)  # the look-at frame's x axis (right = up x back)
    norm = np.linalg.norm(ideal_right, axis=1, keepdims=True)
    ideal_right = ideal_right / np.maximum(norm, 1e-12)
    ideal_up = np.cross(back, ideal_right)
    return np.degrees(np.arctan2((right * ideal_up).sum(1), (right * ideal_right).sum(1)))


def check_angles(angles: np.ndarray, names: list[str], allow_duplicates: bool = False) -> None:
    """Final checks on [N, 3] EpiGRAF angles from any source: finite, yaw not all zero, no repeats."""
    if not np.all(np.isfinite(angles)):
        i = int(np.argmax(~np.isfinite(angles).all(axis=1)))
        raise PoseError(f"the camera angles of {names[i]} contain NaN or infinite values")
    if len(names) > 1 and np.all(np.abs(angles[:, 0]) < 1e-9):
        raise PoseError(
            f"all {len(names)} yaws are zero: the poses look missing or unconverted (EpiGRAF needs views from "
            "different directions)"
        )
    if not allow_duplicates:
        check_duplicates(angles[:, :2], names, "camera angles", DUPLICATE_HINT)

"""Cameras in EpiGRAF's own terms, validated, and converted to EG3D, OpenCV and OpenGL matrices.

A ``Camera`` is what the model was trained with: it sits on a sphere of ``radius`` around
``look_at`` at azimuth ``yaw`` and polar angle ``pitch`` (both radians), looks at ``look_at`` with
world +y up, and has a full field of view ``fov`` in degrees measured between the outermost pixel
centres (the official renderer's definition). World axes: +y up; the frontal camera (yaw 0,
pitch pi/2) sits on +x and looks towards -x; yaw turns it towards +z. docs/toolkit.md has the table.

Roles: ``models/cameras.py`` holds the tensor pose math the networks use (angles -> look-at
matrices -> rays); this module is the user-facing ``Camera`` type (validation, units, conversions
to EG3D/OpenCV/OpenGL) and computes every pose with that same math rather than a copy.

Every constructor validates its numbers and names the unit in its errors, because a camera in the
wrong unit (degrees given as radians, or the reverse) renders an empty or nonsensical image without
any other sign of trouble.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .errors import EpigrafError
from .models import GeneratorConfig
from .models.cameras import camera_origins, clamp_pitch, look_at_cam2world

FOV_RANGE = (1.0, 179.0)  # degrees; below 1 degree the value is almost surely radians
YAW_LIMIT = 2 * math.pi
CONVENTIONS = ("opengl", "opencv")
EG3D_WORLDS = ("model", "eg3d")

# OpenGL camera axes (x right, y up, looking down -z) -> OpenCV (x right, y down, looking down +z).
_GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
# Model world <- EG3D world: EG3D's frontal camera sits on +z, the model's on +x; both are y-up.
# Blender world <- glTF/model world (what Blender's glTF importer applies): y up becomes z up.
_GLTF_TO_BLENDER = np.array([[1.0, 0, 0, 0], [0, 0, -1.0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1.0]])
_EG3D_TO_MODEL = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
GL_TO_CV = _GL_TO_CV  # public name for importers of OpenCV-convention poses (COLMAP, EG3D)


class CameraError(EpigrafError, ValueError):
    """A camera value out of range or in the wrong unit (the message says which and why)."""


def _finite(name: str, value: Any, unit: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise CameraError(f"{name} must be a number in {unit}, got {value!r}") from None
    if not math.isfinite(value):
        raise CameraError(f"{name} must be a finite number in {unit}, got {value}")
    return value


@dataclass(frozen=True)
class Camera:
    """A pinhole camera orbiting ``look_at`` (no roll, world +y up).

    yaw, pitch: radians (pitch is the polar angle from +y: pi/2 is level with the object);
    radius: distance from ``look_at`` in world units; fov: full field of view in degrees.
    """

    yaw: float = 0.0
    pitch: float = math.pi / 2
    radius: float = 1.0
    fov: float = 12.0
    look_at: tuple[float, float, float] = field(default=(0.0, 0.0, 0.0))

    def __post_init__(self) -> None:
        yaw = _finite("yaw", self.yaw, "radians")
        if abs(yaw) > YAW_LIMIT + 1e-9:
            raise CameraError(
                f"yaw must lie in [-2*pi, 2*pi] radians, got {yaw:g} radians; pass degrees with degrees=True "
                "(Python: Camera.from_degrees)"
            )
        pitch = _finite("pitch", self.pitch, "radians")
        if not 0.0 <= pitch <= math.pi + 1e-9:
            hint = "; it looks like degrees: pass degrees=True (Python: Camera.from_degrees)" if pitch > math.pi else ""
            raise CameraError(
                f"pitch is the polar angle from +y and must lie in [0, pi] radians (pi/2 = level with the "
                f"object), got {pitch:g} radians{hint}"
            )
        radius = _finite("radius", self.radius, "world units")
        if radius <= 0:
            raise CameraError(f"radius must be positive (world units, the model's default is 1.0), got {radius:g}")
        fov = _finite("fov", self.fov, "degrees")
        if not FOV_RANGE[0] <= fov <= FOV_RANGE[1]:
            hint = f" (that is {math.degrees(fov):.3g} degrees if you meant radians)" if fov < FOV_RANGE[0] else ""
            raise CameraError(
                f"fov is the full field of view in degrees and must lie in [{FOV_RANGE[0]:g}, {FOV_RANGE[1]:g}], "
                f"got {fov:g}{hint}"
            )
        try:
            look_at = tuple(float(v) for v in self.look_at)
        except (TypeError, ValueError):
            raise CameraError(f"look_at must be three numbers x,y,z in world units, got {self.look_at!r}") from None
        if len(look_at) != 3 or not all(math.isfinite(v) for v in look_at):
            raise CameraError(f"look_at must be three finite numbers x,y,z in world units, got {self.look_at!r}")
        object.__setattr__(self, "yaw", yaw)
        object.__setattr__(self, "pitch", min(pitch, math.pi))
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "fov", fov)
        object.__setattr__(self, "look_at", look_at)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def default(cls, config: GeneratorConfig | None = None, **overrides: Any) -> Camera:
        """The frontal camera of the official scripts (yaw 0, pitch pi/2) with the model's radius and fov."""
        base: dict[str, Any] = {}
        if config is not None:
            base = {"radius": config.radius, "fov": config.fov}
        return cls(**{**base, **overrides})

    @classmethod
    def from_degrees(cls, yaw: float = 0.0, pitch: float = 90.0, **kwargs: Any) -> Camera:
        """Same as ``Camera(...)`` with yaw and pitch in degrees (fov is always in degrees)."""
        yaw = _finite("yaw", yaw, "degrees")
        pitch = _finite("pitch", pitch, "degrees")
        return cls(yaw=math.radians(yaw), pitch=math.radians(pitch), **kwargs)

    def replace(self, **changes: Any) -> Camera:
        return dataclasses.replace(self, **changes)

    # ------------------------------------------------------------------ views of the pose
    @property
    def yaw_degrees(self) -> float:
        return math.degrees(self.yaw)

    @property
    def pitch_degrees(self) -> float:
        return math.degrees(self.pitch)

    @property
    def angles(self) -> tuple[float, float, float]:
        """(yaw, pitch, roll=0) radians: the model's ``camera_angles`` row."""
        return (self.yaw, self.pitch, 0.0)

    @property
    def direction(self) -> np.ndarray:
        """Unit vector [3] from ``look_at`` towards the camera (pitch clamped as the model does).

        The pose math is the model's (``models.cameras``), run here in float64.
        """
        angles = torch.tensor([self.angles], dtype=torch.float64)
        return camera_origins(clamp_pitch(angles)).numpy()[0]

    @property
    def position(self) -> np.ndarray:
        """Camera centre [3] in world units."""
        return np.asarray(self.look_at) + self.radius * self.direction

    def cam2world(self, convention: str = "opengl") -> np.ndarray:
        """[4, 4] float64 camera-to-world matrix.

        'opengl' (the model's own): columns x right, y up, z backwards (the camera looks down -z).
        'opencv': columns x right, y down, z forwards (looks down +z), as EG3D and COLMAP use.
        """
        convention = _check_convention(convention)
        origin = torch.from_numpy(self.position[None])
        target = torch.tensor([self.look_at], dtype=torch.float64)
        c2w = look_at_cam2world(origin, target).numpy()[0]  # the model's look-at, in float64
        return c2w @ _GL_TO_CV if convention == "opencv" else c2w

    def world2cam(self, convention: str = "opengl") -> np.ndarray:
        """[4, 4] inverse of ``cam2world`` (the 'extrinsics' or view matrix)."""
        c2w = self.cam2world(convention)
        w2c = np.eye(4)
        w2c[:3, :3] = c2w[:3, :3].T
        w2c[:3, 3] = -c2w[:3, :3].T @ c2w[:3, 3]
        return w2c

    def intrinsics(self, resolution: int) -> np.ndarray:
        """[3, 3] OpenCV pixel intrinsics for a square image of ``resolution`` pixels.

        Pixel centres sit at integer coordinates 0 .. resolution-1, so the principal point is
        (resolution - 1) / 2 and f = (resolution - 1) / (2 tan(fov / 2)): the fov spans the
        outermost pixel centres, exactly as the renderer casts its rays.
        """
        res = _check_resolution(resolution)
        f = (res - 1) / (2 * math.tan(math.radians(self.fov) / 2))
        c = (res - 1) / 2
        return np.array([[f, 0.0, c], [0.0, f, c], [0.0, 0.0, 1.0]])

    # ------------------------------------------------------------------ EG3D's 25 numbers
    def to_eg3d(self, resolution: int, world: str = "model") -> np.ndarray:
        """EG3D's camera label [25]: OpenCV cam2world (16, row-major) + normalised intrinsics (9).

        Normalised intrinsics divide pixel units by the image size with pixel centres at
        (i + 0.5) / resolution, so cx = cy = 0.5 and fx = fy = (resolution - 1) / (2 resolution tan(fov / 2)).
        world='model' keeps this model's world axes; 'eg3d' rotates them into EG3D's (frontal camera
        on +z) without changing scale.
        """
        res = _check_resolution(resolution)
        c2w = self.cam2world("opencv")
        if _check_world(world) == "eg3d":
            c2w = _rotate_world(c2w, _EG3D_TO_MODEL.T)
        fx = (res - 1) / (2 * res * math.tan(math.radians(self.fov) / 2))
        intr = np.array([[fx, 0.0, 0.5], [0.0, fx, 0.5], [0.0, 0.0, 1.0]])
        return np.concatenate([c2w.reshape(-1), intr.reshape(-1)])

    @classmethod
    def from_eg3d(cls, label: Sequence[float] | np.ndarray, resolution: int, world: str = "model") -> Camera:
        """Inverse of ``to_eg3d``; refuses labels this camera model cannot express (roll, skew, off-centre)."""
        res = _check_resolution(resolution)
        c2w, fx = eg3d_label_parts(label, world)
        fov = math.degrees(2 * math.atan((res - 1) / (2 * res * fx)))
        return cls.from_cam2world(c2w, fov=fov, convention="opencv")

    @classmethod
    def from_cam2world(cls, cam2world: np.ndarray | torch.Tensor, fov: float, convention: str = "opengl") -> Camera:
        """A camera from a [4, 4] (or [3, 4]) cam2world matrix; fov in degrees.

        ``look_at`` becomes the point of the optical axis closest to the world origin, so cameras that
        look at the origin come back with look_at (0, 0, 0). Matrices with roll are refused.
        """
        m = np.asarray(cam2world.detach().cpu() if isinstance(cam2world, torch.Tensor) else cam2world, np.float64)
        if m.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(m)):
            raise CameraError(f"cam2world must be a finite [4, 4] or [3, 4] matrix, got shape {m.shape}")
        rot = m[:3, :3] @ _GL_TO_CV[:3, :3] if _check_convention(convention) == "opencv" else m[:3, :3]
        if not np.allclose(rot.T @ rot, np.eye(3), atol=1e-4) or np.linalg.det(rot) < 0:
            raise CameraError("cam2world's rotation part is not a proper rotation (orthonormal, determinant +1)")
        origin, forward = m[:3, 3], -rot[:, 2]
        dist = -float(origin @ forward)
        if dist <= 0:
            raise CameraError("this camera looks away from the world origin; EpiGRAF cameras face the object")
        look_at = origin + dist * forward
        back = -forward
        pitch = math.acos(max(-1.0, min(1.0, back[1])))
        yaw = math.atan2(back[2], back[0])
        cam = cls(yaw=yaw, pitch=pitch, radius=dist, fov=fov, look_at=tuple(look_at))
        ideal = cam.cam2world()[:3, :3]
        roll = math.degrees(math.atan2(float(rot[:, 0] @ ideal[:, 1]), float(rot[:, 0] @ ideal[:, 0])))
        if abs(roll) > 1e-2:
            raise CameraError(f"this camera has {roll:.3g} degrees of roll; EpiGRAF cameras have none (world +y up)")
        return cam

    def to_blender(self, resolution: int) -> tuple[np.ndarray, float]:
        """(matrix_world [4, 4], angle in radians) of a Blender camera that sees what this camera renders.

        For meshes imported from GLB: Blender's glTF importer turns glTF's y-up world (ours) into its
        z-up one, (x, y, z) -> (x, -z, y), so the camera is rotated the same way. Blender cameras look
        down their local -z with +y up, as OpenGL (our convention) does. Blender's ``angle`` spans the
        image edges, ours the outermost pixel centres, hence the resolution. Use a square render of
        ``resolution`` pixels (Sensor Fit 'Auto').
        """
        res = _check_resolution(resolution)
        matrix = _GLTF_TO_BLENDER @ self.cam2world("opengl")
        focal = self.intrinsics(res)[0, 0]
        return matrix, 2 * math.atan(res / (2 * focal))

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """Plain values with units in the keys' documentation: yaw/pitch radians, fov degrees."""
        return {
            "yaw": self.yaw,
            "pitch": self.pitch,
            "yaw_degrees": self.yaw_degrees,
            "pitch_degrees": self.pitch_degrees,
            "radius": self.radius,
            "fov_degrees": self.fov,
            "look_at": list(self.look_at),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Camera:
        fov = data.get("fov_degrees", data.get("fov", 12.0))
        return cls(
            yaw=data.get("yaw", 0.0),
            pitch=data.get("pitch", math.pi / 2),
            radius=data.get("radius", 1.0),
            fov=fov,
            look_at=tuple(data.get("look_at", (0.0, 0.0, 0.0))),
        )


def eg3d_label_parts(label: Sequence[float] | np.ndarray, world: str = "model") -> tuple[np.ndarray, float]:
    """Validate an EG3D label [25] and split it: (OpenCV cam2world [4, 4] in ``world`` -> model axes, fx).

    fx is the focal length divided by the image size (EG3D's normalised intrinsics). Kept apart from
    ``Camera.from_eg3d`` because dataset import needs the raw pose (it may carry roll or look past the
    origin, which a ``Camera`` refuses) and the focal length without a resolution.
    """
    vec = np.asarray(label, dtype=np.float64).reshape(-1)
    if vec.size != 25:
        raise CameraError(f"an EG3D camera label is 25 finite numbers (16 cam2world + 9 intrinsics), got {vec.size}")
    if not np.all(np.isfinite(vec)):
        raise CameraError("an EG3D camera label must hold finite numbers; this one contains NaN or infinite values")
    c2w, intr = vec[:16].reshape(4, 4), vec[16:].reshape(3, 3)
    fx, fy, skew, cx, cy = intr[0, 0], intr[1, 1], intr[0, 1], intr[0, 2], intr[1, 2]
    if fx <= 0 or abs(fx - fy) > 1e-4 * fx or abs(skew) > 1e-6 or abs(cx - 0.5) > 1e-4 or abs(cy - 0.5) > 1e-4:
        raise CameraError(
            "EG3D intrinsics must be normalised with fx = fy > 0, no skew and cx = cy = 0.5; "
            f"got fx={fx:g}, fy={fy:g}, skew={skew:g}, cx={cx:g}, cy={cy:g}"
        )
    if _check_world(world) == "eg3d":
        c2w = _rotate_world(c2w, _EG3D_TO_MODEL)
    return c2w, float(fx)


def camera_from_options(
    config: GeneratorConfig | None,
    yaw: float | None = None,
    pitch: float | None = None,
    radius: float | None = None,
    fov: float | None = None,
    look_at: Sequence[float] | None = None,
    degrees: bool = False,
) -> Camera:
    """The default camera of ``config`` with the given values replaced (yaw/pitch in degrees if asked)."""
    cam = Camera.default(config)
    changes: dict[str, Any] = {}
    if yaw is not None:
        changes["yaw"] = math.radians(_finite("yaw", yaw, "degrees")) if degrees else yaw
    if pitch is not None:
        changes["pitch"] = math.radians(_finite("pitch", pitch, "degrees")) if degrees else pitch
    if radius is not None:
        changes["radius"] = radius
    if fov is not None:
        changes["fov"] = fov
    if look_at is not None:
        changes["look_at"] = tuple(look_at)
    return cam.replace(**changes)


def parse_look_at(text: str | None) -> tuple[float, float, float] | None:
    """'x,y,z' -> (x, y, z) world units; None passes through."""
    if text is None:
        return None
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise CameraError(f"look_at must be three numbers 'x,y,z' in world units, got {text!r}") from None
    if len(values) != 3:
        raise CameraError(f"look_at must be three numbers 'x,y,z' in world units, got {text!r}")
    return values  # type: ignore[return-value]


@dataclass
class CameraTensors:
    """A batch of V cameras as the renderer consumes them."""

    cam2world: torch.Tensor  # [V, 4, 4] OpenGL convention
    fov: torch.Tensor  # [V] degrees
    distance: torch.Tensor  # [V] distance of each camera centre from the world origin


def cameras_to_tensors(
    cameras: Sequence[Camera], device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> CameraTensors:
    """Stack cameras for rendering, computing poses with the model's own float32 code.

    For look_at (0, 0, 0) the matrices are bit-identical to those ``Generator.render_planes`` builds
    from (yaw, pitch) angles, so both paths render the same pixels.
    """
    if len(cameras) == 0:
        raise CameraError("no cameras to render")
    angles = torch.tensor([c.angles for c in cameras], dtype=dtype, device=device)
    radius = torch.tensor([c.radius for c in cameras], dtype=dtype, device=device)
    target = torch.tensor([c.look_at for c in cameras], dtype=dtype, device=device)
    origins = camera_origins(clamp_pitch(angles), radius) + target
    c2w = look_at_cam2world(origins, target)
    fov = torch.tensor([c.fov for c in cameras], dtype=dtype, device=device)
    return CameraTensors(cam2world=c2w, fov=fov, distance=origins.norm(dim=-1))


def _check_convention(convention: str) -> str:
    if convention not in CONVENTIONS:
        raise CameraError(f"unknown camera convention {convention!r}; expected one of {', '.join(CONVENTIONS)}")
    return convention


def _check_world(world: str) -> str:
    if world not in EG3D_WORLDS:
        raise CameraError(f"unknown world frame {world!r}; expected one of {', '.join(EG3D_WORLDS)}")
    return world


def _check_resolution(resolution: int) -> int:
    if not isinstance(resolution, (int, np.integer)) or resolution < 2:
        raise CameraError(f"resolution must be an integer number of pixels >= 2, got {resolution!r}")
    return int(resolution)


def _rotate_world(c2w: np.ndarray, rot: np.ndarray) -> np.ndarray:
    """Express a cam2world in another world frame: new = rot @ old (rotation and position)."""
    out = np.array(c2w, dtype=np.float64).copy()
    out[:3, :3] = rot @ out[:3, :3]
    out[:3, 3] = rot @ out[:3, 3]
    return out


def check_slab_distance(distance: float, radius: float, ray_start: float) -> None:
    """Refuse a camera at ``distance`` from the origin whose ray slab (ray_start shifted by distance -
    radius) would start behind it: the colour renderer cannot draw from inside the object's slab."""
    if ray_start + distance - radius <= 0:
        raise CameraError(
            f"camera at distance {distance:.3g} from the origin is inside the object's slab; "
            f"cameras must be farther than {radius - ray_start:.3g} from it"
        )

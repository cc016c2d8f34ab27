"""The ``camera`` object of ``dataset.json``: how the images were taken, in EpiGRAF's camera model.

A dataset that says how its cameras look (field of view, distance, where the object lies along each
ray, how big the object's box is, the background colour) trains with those settings by default, and
the trained snapshot's config records them, so every toolkit command renders the model with the
cameras it was trained with. Without the object, the settings are the FFHQ ones (GeneratorConfig's
defaults) as before. This module is the one place that defines the schema; ``epigraf dataset synth``
and ``epigraf dataset import`` write it, training reads it (docs/training.md, "Dataset cameras")::

    "camera": {
      "fov": 30.0,            vertical field of view, degrees, in (0, 180)
      "radius": 1.0,          camera distance from the origin (world units), > 0
      "ray_start": 0.7,       where rays start and end (distance from the camera), 0 < start < end
      "ray_end": 1.3,
      "cube_scale": 0.35,     half-size of the tri-plane box around the origin, > 0
      "white_back": true,     colour of empty rays: true white, false black
      "pose_distribution": {  optional: where fake poses come from when images have no camera_angles
        "dist": "uniform",    'uniform', 'normal' or 'spherical_uniform' (training/poses.py)
        "horizontal_mean": 0.0, "horizontal_stddev": 3.14159,   yaw (radians)
        "vertical_mean": 1.5708, "vertical_stddev": 0.5         pitch (radians)
      }
    }

Every key is optional (a missing one keeps the training default); other keys (notes, the source of
an import) are ignored. A ``pose_distribution`` without ``dist`` is a description only and ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from epigraf_tools.errors import EpigrafError

from .poses import DISTRIBUTIONS

CAMERA_KEY = "camera"
# dataset.json camera key -> TrainConfig option (the names are the same, on purpose).
CAMERA_OPTIONS: tuple[str, ...] = ("fov", "radius", "ray_start", "ray_end", "cube_scale", "white_back")
# pose_distribution key -> TrainConfig option.
POSE_OPTIONS: dict[str, str] = {
    "dist": "camera_dist",
    "horizontal_mean": "camera_horizontal_mean",
    "horizontal_stddev": "camera_horizontal_stddev",
    "vertical_mean": "camera_vertical_mean",
    "vertical_stddev": "camera_vertical_stddev",
}


class DatasetCameraError(EpigrafError):
    """A ``camera`` object in dataset.json that cannot describe a camera (the message names the key)."""


@dataclass(frozen=True)
class PoseDistribution:
    """A parametric pose distribution (training/poses.py CameraDistribution's parameters)."""

    dist: str
    horizontal_mean: float = 0.0
    horizontal_stddev: float = math.pi
    vertical_mean: float = math.pi / 2
    vertical_stddev: float = math.pi / 2


@dataclass(frozen=True)
class DatasetCameras:
    """What a dataset says about its cameras; None: the dataset does not say."""

    fov: float | None = None
    radius: float | None = None
    ray_start: float | None = None
    ray_end: float | None = None
    cube_scale: float | None = None
    white_back: bool | None = None
    pose_distribution: PoseDistribution | None = None

    def options(self) -> dict[str, Any]:
        """The TrainConfig options this dataset sets (camera settings only, not the pose distribution)."""
        return {name: getattr(self, name) for name in CAMERA_OPTIONS if getattr(self, name) is not None}

    def pose_options(self) -> dict[str, Any]:
        """The TrainConfig options of the pose distribution (empty without one)."""
        p = self.pose_distribution
        return {} if p is None else {option: getattr(p, key) for key, option in POSE_OPTIONS.items()}

    def to_json(self) -> dict[str, Any]:
        """The ``camera`` object for dataset.json (what writers of datasets call)."""
        out: dict[str, Any] = self.options()
        if self.pose_distribution is not None:
            pose = self.pose_distribution
            out["pose_distribution"] = {f.name: getattr(pose, f.name) for f in fields(PoseDistribution)}
        return out


def _number(camera: dict, key: str, positive: bool = True) -> float | None:
    value = camera.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetCameraError(f"dataset.json camera.{key} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise DatasetCameraError(f"dataset.json camera.{key} must be > 0, got {value!r}")
    return float(value)


def _pose_distribution(raw: Any) -> PoseDistribution | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise DatasetCameraError(f"dataset.json camera.pose_distribution must be an object, got {raw!r}")
    if "dist" not in raw:
        return None  # a description for people (e.g. {"yaw": "uniform(-pi, pi)"}), not parameters
    dist = raw["dist"]
    if dist not in DISTRIBUTIONS or dist == "custom":
        choices = ", ".join(d for d in DISTRIBUTIONS if d != "custom")
        raise DatasetCameraError(f"dataset.json camera.pose_distribution.dist must be one of {choices}, got {dist!r}")
    values: dict[str, float] = {}
    for key in ("horizontal_mean", "horizontal_stddev", "vertical_mean", "vertical_stddev"):
        v = _number(raw, key, positive=False)
        if v is not None:
            if key.endswith("stddev") and v < 0:
                raise DatasetCameraError(f"dataset.json camera.pose_distribution.{key} must be >= 0, got {v}")
            values[key] = v
    return PoseDistribution(dist=dist, **values)


def read_dataset_cameras(meta: dict[str, Any]) -> DatasetCameras | None:
    """The cameras described by a parsed dataset.json (``meta``), or None when it has no ``camera`` object.

    Raises DatasetCameraError (one line naming the key) for values no camera can have, so a typo in
    the file stops training before any work rather than producing a model with wrong cameras.
    """
    camera = meta.get(CAMERA_KEY)
    if camera is None:
        return None
    if not isinstance(camera, dict):
        raise DatasetCameraError(f"dataset.json 'camera' must be an object, got {camera!r}")
    white = camera.get("white_back")
    if white is not None and not isinstance(white, bool):
        raise DatasetCameraError(f"dataset.json camera.white_back must be true or false, got {white!r}")
    cams = DatasetCameras(
        fov=_number(camera, "fov"),
        radius=_number(camera, "radius"),
        ray_start=_number(camera, "ray_start"),
        ray_end=_number(camera, "ray_end"),
        cube_scale=_number(camera, "cube_scale"),
        white_back=white,
        pose_distribution=_pose_distribution(camera.get("pose_distribution")),
    )
    if cams.fov is not None and cams.fov >= 180:
        raise DatasetCameraError(f"dataset.json camera.fov must be below 180 degrees, got {cams.fov:g}")
    if cams.ray_start is not None and cams.ray_end is not None and cams.ray_start >= cams.ray_end:
        raise DatasetCameraError(
            f"dataset.json camera.ray_start ({cams.ray_start:g}) must be below camera.ray_end ({cams.ray_end:g})"
        )
    return cams


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return bool(a) == bool(b)
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)


def resolve_camera_options(
    explicit: dict[str, Any],
    cameras: DatasetCameras | None,
    fallback: dict[str, Any],
    has_poses: bool,
    allow_mismatch: bool = False,
    warn: Any = None,
) -> dict[str, Any]:
    """The camera options a run trains with: explicit (not None) > the dataset's > ``fallback``.

    ``explicit``: the run's camera and pose options as given (None: not given); ``fallback``: a value
    for every CAMERA_OPTIONS name (GeneratorConfig's defaults, or the initial model's cameras). An
    explicit value that differs from the dataset's raises DatasetCameraError naming both, unless
    ``allow_mismatch`` (then ``warn`` gets the same line). The dataset's pose distribution replaces
    the 'custom' default only when the images carry no camera_angles (training could not run
    otherwise).
    """
    from_data = cameras.options() if cameras is not None else {}
    out: dict[str, Any] = {}
    for name in CAMERA_OPTIONS:
        given, data = explicit.get(name), from_data.get(name)
        if given is not None and data is not None and not _same(given, data):
            line = (
                f"{name}: the dataset says {data:g} (dataset.json camera.{name}) but the options say {given:g}"
                if not isinstance(data, bool)
                else f"{name}: the dataset says {str(data).lower()} (dataset.json camera.{name}) but the options "
                f"say {str(given).lower()}"
            )
            if not allow_mismatch:
                raise DatasetCameraError(
                    f"{line}; drop the option, or pass --allow-camera-mismatch to train with {given!r}"
                )
            if warn is not None:
                warn(f"warning: {line}; training with {given!r} (--allow-camera-mismatch)")
        out[name] = given if given is not None else data if data is not None else fallback[name]
    if cameras is not None and cameras.pose_distribution is not None and not has_poses:
        if explicit.get("camera_dist", "custom") == "custom":
            out.update(cameras.pose_options())
    return out

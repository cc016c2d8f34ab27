"""``epigraf dataset import``: build an EpiGRAF training dataset (zip + dataset.json) from posed images.

Pipeline: read the source (pose_sources.py) -> check names and that every image exists -> poses to
EpiGRAF angles around the origin (pose_normalise.py) -> check the angles -> square-crop and resize
every image -> write ``images/NNNNNN.png`` and ``dataset.json`` into the zip atomically.

Images: the centred square of side min(width, height) is kept (the principal point should be near
the image centre; a warning says when it is not) and resized with Lanczos to ``resolution`` (default:
the largest power of two that fits the smallest crop). Transparent pixels are composited onto
``background`` (white by default, as Blender/NeRF synthetic scenes are rendered). The field of view
is recomputed for the output size with EpiGRAF's definition (the angle between the outermost pixel
centres, models/cameras.py), from the source focal length relative to the crop.

``dataset.json`` holds ``camera_angles`` {file: [yaw, pitch, 0]}, ``camera`` (the schema that
``epigraf dataset synth`` writes and training reads: fov, radius, ray_start, ray_end, cube_scale,
white_back, and pose_distribution as the uniform yaw/pitch ranges the images cover),
``camera_radii`` {file: distance} for formats with camera positions, and ``import`` (source, format,
up axis, the 4x4 source -> EpiGRAF world transform, pose statistics).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .atomic import atomic_path
from .errors import EpigrafError
from .pose_normalise import UP_CHOICES, OrbitPoses, check_angles, orbit_from_cam2world
from .pose_sources import ANGLE_UNITS, FORMATS, PoseSource, read_source

BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0)}
MAX_RESOLUTION = 1024
# EpiGRAF's ray range and cube scale, relative to the camera radius, as `dataset synth` uses them:
# a guess for captured data (the object must fit in the cube and between the ray ends); check it.
RAY_START, RAY_END, CUBE_SCALE = 0.7, 1.3, 0.35
FOV_SPREAD_WARNING = 0.01  # relative spread of per-image fovs above which a warning is given
PRINCIPAL_WARNING = 0.02  # principal point this far (in crop widths) from the centre: a warning
OFF_AXIS_WARNING = 5.0  # degrees a camera looks past the origin (or rolls) before a warning
RADIUS_SPREAD_WARNING = 1.1  # largest / smallest camera distance above this: a warning


class DatasetImportError(EpigrafError):
    """An import that cannot proceed (the message names the file or image and the fix)."""


@dataclass
class ImportOptions:
    """How to import. fov: degrees (needed for yaw/pitch tables, else it overrides the source's)."""

    format: str = "auto"
    resolution: int | None = None
    images: Path | None = None
    up: str = "auto"
    radius: float = 1.0
    fov: float | None = None
    angle_units: str | None = None
    background: str = "white"
    allow_duplicate_poses: bool = False
    centre_yaw: bool = False

    def validate(self) -> None:
        if self.format not in FORMATS:
            raise DatasetImportError(f"format must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if self.up not in UP_CHOICES:
            raise DatasetImportError(f"up must be one of {', '.join(UP_CHOICES)}, got {self.up!r}")
        if self.resolution is not None and (
            self.resolution < 8 or self.resolution > MAX_RESOLUTION or self.resolution & (self.resolution - 1)
        ):
            raise DatasetImportError(
                f"resolution must be a power of two in [8, {MAX_RESOLUTION}], got {self.resolution}"
            )
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise DatasetImportError(f"radius must be a positive number of world units, got {self.radius}")
        if self.fov is not None and not 1.0 <= self.fov <= 179.0:
            raise DatasetImportError(f"fov is the full field of view in degrees, in [1, 179], got {self.fov}")
        if self.angle_units is not None and self.angle_units not in ANGLE_UNITS:
            raise DatasetImportError(f"angle_units must be one of {', '.join(ANGLE_UNITS)}, got {self.angle_units!r}")
        if self.background not in BACKGROUNDS:
            raise DatasetImportError(f"background must be one of {', '.join(BACKGROUNDS)}, got {self.background!r}")


@dataclass
class ImportReport:
    """What was written: counts, the camera settings in dataset.json and anything worth a look."""

    out: Path
    format: str
    num_images: int
    resolution: int
    camera: dict
    up: str
    warnings: list[str] = field(default_factory=list)


def import_dataset(
    src: str | os.PathLike[str], out: str | os.PathLike[str], options: ImportOptions | None = None
) -> ImportReport:
    """Convert the posed images at ``src`` into an EpiGRAF dataset zip ``out`` (written atomically).

    Every check (format, poses, names, image files and sizes) runs before the zip is started.
    """
    opts = options or ImportOptions()
    opts.validate()
    src, out = Path(src), Path(out)
    _check_out(src, out)
    source = read_source(src, opts.format, opts.images, opts.angle_units)
    _check_names(source)
    warnings = list(source.notes)
    orbit = None
    if source.cam2world is not None:
        up = source.up if opts.up == "auto" and source.up else opts.up  # EG3D's world fixes its up axis
        orbit = orbit_from_cam2world(source.cam2world, source.names, up, opts.radius, opts.allow_duplicate_poses)
        angles = orbit.angles.copy()
        warnings += _pose_warnings(orbit)
    else:
        angles = np.asarray(source.angles, np.float64).copy()
    yaw_offset = _circular_mean(angles[:, 0]) if opts.centre_yaw else 0.0
    angles[:, 0] = _wrap(angles[:, 0] - yaw_offset)
    check_angles(angles, source.names, opts.allow_duplicate_poses)
    sizes = [_image_size(source, name) for name in source.names]
    side = min(min(w, h) for w, h in sizes)
    resolution = opts.resolution or min(MAX_RESOLUTION, 2 ** int(math.floor(math.log2(side))))
    if resolution > side:
        warnings.append(
            f"the smallest crop is {side} px, below the output resolution {resolution}: images are upsampled"
        )
    fov, fov_notes = _output_fov(source, sizes, resolution, opts.fov)
    warnings += fov_notes
    camera = {
        "fov": fov,
        "radius": opts.radius,
        "ray_start": RAY_START * opts.radius,
        "ray_end": RAY_END * opts.radius,
        "cube_scale": CUBE_SCALE * opts.radius,
        "white_back": opts.background == "white",
        "background": opts.background,  # what transparent pixels were filled with (as `dataset synth` says)
        "pose_distribution": observed_pose_range(angles),
    }
    meta = _metadata(source, src, angles, camera, orbit, yaw_offset, opts)
    _write_zip(out, source, meta, resolution, BACKGROUNDS[opts.background])
    up = orbit.up_method if orbit is not None else "+y (angles given)"
    return ImportReport(out, source.format, len(source.names), resolution, camera, up, warnings)


def _check_out(src: Path, out: Path) -> None:
    if out.suffix.lower() != ".zip":
        raise DatasetImportError(f"the output must be a .zip file, got {out}")
    if not out.parent.is_dir():
        raise DatasetImportError(f"cannot write {out}: the folder {out.parent} does not exist")
    if src.exists() and out.exists() and src.resolve() == out.resolve():
        raise DatasetImportError(f"the output {out} is the source itself; choose another name")


def _check_names(source: PoseSource) -> None:
    if not source.names:
        raise DatasetImportError(f"the {source.format} source lists no images")
    seen: dict[str, str] = {}
    for name in source.names:
        key = os.path.splitext(name)[0]
        if key in seen:
            raise DatasetImportError(f"image {name} is listed twice (as {seen[key]} and {name})")
        seen[key] = name
    missing = [n for n in source.names if not source.files.exists(n)]
    if missing:
        raise DatasetImportError(
            f"{len(missing)} of {len(source.names)} images are missing under {source.files.root} "
            f"(first: {missing[0]}); pass images=DIR if they live elsewhere"
        )


def _pose_warnings(orbit: OrbitPoses) -> list[str]:
    stats, notes = orbit.stats, []
    if stats["max_off_axis_degrees"] > OFF_AXIS_WARNING:
        notes.append(
            f"some cameras look up to {stats['max_off_axis_degrees']:.1f} degrees past the origin; "
            "EpiGRAF renders every view looking at it"
        )
    if stats["max_roll_degrees"] > OFF_AXIS_WARNING:
        notes.append(f"some cameras roll up to {stats['max_roll_degrees']:.1f} degrees; EpiGRAF cameras have none")
    if stats["radius_max"] > RADIUS_SPREAD_WARNING * stats["radius_min"]:
        notes.append(
            f"camera distances range over [{stats['radius_min']:.3f}, {stats['radius_max']:.3f}]; EpiGRAF "
            "uses one radius (the median), the per-image ones are in camera_radii"
        )
    return notes


def observed_pose_range(angles: np.ndarray) -> dict:
    """The smallest uniform yaw/pitch distribution (dataset.json camera.pose_distribution) covering ``angles`` [N, 3].

    Training draws fake poses from it only for images without camera_angles, which imports never
    have; it is written so the dataset describes its cameras in the one schema readers know. Uniform
    'stddev' is the half-range (training/poses.py); yaw is centred on its circular mean.
    """
    centre = _circular_mean(angles[:, 0])
    half = float(np.abs(_wrap(angles[:, 0] - centre)).max())
    low, high = float(angles[:, 1].min()), float(angles[:, 1].max())
    return {
        "dist": "uniform",
        "horizontal_mean": centre,
        "horizontal_stddev": half,
        "vertical_mean": (low + high) / 2,
        "vertical_stddev": (high - low) / 2,
    }


def _circular_mean(yaw: np.ndarray) -> float:
    return float(np.arctan2(np.sin(yaw).mean(), np.cos(yaw).mean()))


def _wrap(yaw: np.ndarray) -> np.ndarray:
    """Angles into (-pi, pi] (unchanged when already there, so exact values stay exact)."""
    out = yaw.copy()
    outside = (out <= -math.pi) | (out > math.pi)
    out[outside] = -((-out[outside] + math.pi) % (2 * math.pi) - math.pi)
    return out


def _open(source: PoseSource, name: str):
    from PIL import Image

    try:
        img = Image.open(io.BytesIO(source.files.read(name)))
        img.load()
    except Exception as exc:  # noqa: BLE001 - any decoder failure means a bad file
        raise DatasetImportError(f"cannot decode image {name}: {exc}") from None
    return img


def _image_size(source: PoseSource, name: str) -> tuple[int, int]:
    from PIL import Image

    try:
        return Image.open(io.BytesIO(source.files.read(name))).size
    except Exception as exc:  # noqa: BLE001
        raise DatasetImportError(f"cannot read image {name}: {exc}") from None


def _output_fov(
    source: PoseSource, sizes: list[tuple[int, int]], resolution: int, given: float | None
) -> tuple[float, list[str]]:
    """EpiGRAF fov (degrees, between outermost pixel centres of the output) and warnings."""
    if source.focal is None:
        if given is None:
            raise DatasetImportError(f"the {source.format} source states no focal length: pass fov=DEGREES")
        return float(given), []
    notes = []
    wh = np.array(sizes, np.float64)
    side = wh.min(axis=1)
    focal_crop = source.focal * wh[:, 0] / side  # focal length in crop widths
    fovs = np.degrees(2 * np.arctan((resolution - 1) / (2 * resolution * focal_crop)))
    fov = float(np.median(fovs))
    if fovs.max() - fovs.min() > FOV_SPREAD_WARNING * fov:
        notes.append(f"fields of view range over [{fovs.min():.2f}, {fovs.max():.2f}] degrees; the median is used")
    if source.principal is not None:
        offset = np.abs(source.principal - 0.5) * wh / side[:, None]
        if offset.max() > PRINCIPAL_WARNING:
            notes.append(f"principal points lie up to {offset.max():.1%} of the crop from the image centre")
    if given is not None:
        if abs(given - fov) > FOV_SPREAD_WARNING * fov:
            notes.append(f"fov={given:g} overrides the source's {fov:.3f} degrees")
        fov = float(given)
    return fov, notes


def _metadata(
    source: PoseSource,
    src: Path,
    angles: np.ndarray,
    camera: dict,
    orbit: OrbitPoses | None,
    yaw_offset: float,
    opts: ImportOptions,
) -> dict:
    out_names = [f"images/{i:06d}.png" for i in range(len(source.names))]
    meta: dict = {
        "camera_angles": {n: [float(v) for v in a] for n, a in zip(out_names, angles, strict=True)},
        "camera": camera,
    }
    info: dict = {
        "source": str(src),
        "format": source.format,
        "source_files": dict(zip(out_names, source.names, strict=True)),
        "background": opts.background,
        "yaw_offset": yaw_offset,
    }
    if orbit is not None:
        c, s = math.cos(yaw_offset), math.sin(yaw_offset)
        yaw_rot = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])
        meta["camera_radii"] = {n: float(r) for n, r in zip(out_names, orbit.radii, strict=True)}
        info.update(
            up=orbit.up.tolist(),
            up_method=orbit.up_method,
            look_at=orbit.look_at.tolist(),
            transform=(yaw_rot @ orbit.transform).tolist(),
            stats=orbit.stats,
        )
    meta["import"] = info
    return meta


def _write_zip(out: Path, source: PoseSource, meta: dict, resolution: int, background: tuple[int, int, int]) -> None:
    from PIL import Image

    with atomic_path(out) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for out_name, source_name in meta["import"]["source_files"].items():
            img = _open(source, source_name)
            img = _flatten(img, background)
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            img = img.crop((left, top, left + side, top + side))
            if side != resolution:
                img = img.resize((resolution, resolution), Image.LANCZOS)
            buf = io.BytesIO()
            img.save(buf, format="PNG")
            zf.writestr(out_name, buf.getvalue())
        zf.writestr("dataset.json", json.dumps(meta))


def _flatten(img, background: tuple[int, int, int]):
    """RGB image; transparency (RGBA, LA, palette with transparency) composited onto ``background``."""
    from PIL import Image

    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        base = Image.new("RGBA", rgba.size, background + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return img.convert("RGB")

"""Readers for posed image collections: EG3D dataset.json, NeRF transforms.json, COLMAP, yaw/pitch tables.

Each reader returns a ``PoseSource``: the images (as names inside a folder or zip) and, per image,
either an OpenGL cam2world matrix in the source's world (EG3D, transforms, COLMAP) or EpiGRAF
angles directly (yaw/pitch tables), plus the focal length relative to the image width where the
format states it. Turning matrices into EpiGRAF angles is pose_normalise.py's job; cropping and
resizing the images is dataset_import.py's.

Conventions read here:
- EG3D ``dataset.json``: ``"labels": [[name, [16 cam2world + 9 intrinsics]], ...]``, OpenCV camera
  axes, normalised intrinsics, EG3D's world (y up, frontal camera on +z; rotated to EpiGRAF's +x).
- ``transforms.json`` (NeRF, Blender, instant-ngp, nerfstudio): ``frames[].transform_matrix`` is
  cam2world in OpenGL axes; the focal length comes from ``fl_x``/``w`` (per frame or global) or
  ``camera_angle_x`` (the full horizontal angle between the image edges, radians).
- COLMAP: see colmap_model.py (world-to-camera, OpenCV axes, intrinsics in pixels).
- yaw/pitch tables: EpiGRAF's own angles (yaw azimuth from +x towards +z, pitch the polar angle from
  +y, pi/2 = level), in degrees or radians as the column names or ``angle_units`` say.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .camera import GL_TO_CV, CameraError, eg3d_label_parts
from .colmap_model import ColmapError, find_model, read_model
from .errors import EpigrafError

FORMATS = ("auto", "eg3d", "transforms", "colmap", "angles")
ANGLE_UNITS = ("degrees", "radians")
NAME_COLUMNS = ("file", "filename", "file_name", "name", "image", "path")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


class SourceError(EpigrafError):
    """A source collection that cannot be read (missing file, bad JSON, unknown layout)."""


class Files:
    """Read access to image files by relative name inside a folder or a zip (the source of a dataset)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._zip = zipfile.ZipFile(root) if root.is_file() and root.suffix.lower() == ".zip" else None
        self._names = set(self._zip.namelist()) if self._zip is not None else None

    def exists(self, name: str) -> bool:
        if self._names is not None:
            return name in self._names
        return (self.root / name).is_file()

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.root / name).read_bytes()


@dataclass
class PoseSource:
    """What a reader found. names: image names inside ``files``; exactly one of cam2world / angles is set.

    cam2world: [N, 4, 4] OpenGL (x right, y up, looking down -z) in the source world.
    angles: [N, 3] EpiGRAF (yaw, pitch, roll) radians. focal: [N] focal length / image width, NaN where unknown.
    principal: [N, 2] principal point / image size (0.5 = centred), NaN where unknown.
    up: the up axis the format fixes ('+y' for EG3D) or None (detect it).
    """

    format: str
    files: Files
    names: list[str]
    cam2world: np.ndarray | None = None
    angles: np.ndarray | None = None
    focal: np.ndarray | None = None
    principal: np.ndarray | None = None
    up: str | None = None
    notes: list[str] = field(default_factory=list)


def _load_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"cannot read {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SourceError(f"{path} is not valid JSON: {exc}") from None


def detect_format(src: Path) -> str:
    """Guess the format of ``src`` from its files (an explicit format skips this)."""
    if not src.exists():
        raise SourceError(f"{src} does not exist")
    if src.is_file():
        suffix = src.suffix.lower()
        if suffix == ".csv":
            return "angles"
        if suffix == ".zip":
            return "eg3d"
        if suffix == ".json":
            data = _load_json(src)
            if isinstance(data, dict) and "frames" in data:
                return "transforms"
            if isinstance(data, dict) and _looks_like_eg3d(data.get("labels")):
                return "eg3d"
            return "angles"
        raise SourceError(f"cannot tell the format of {src}; pass format=NAME ({', '.join(FORMATS[1:])})")
    if (src / "transforms.json").is_file() or any(src.glob("transforms_*.json")):
        return "transforms"
    if (src / "dataset.json").is_file():
        meta = _load_json(src / "dataset.json")
        if isinstance(meta, dict) and _looks_like_eg3d(meta.get("labels")):
            return "eg3d"
    if find_model(src) is not None:
        return "colmap"
    raise SourceError(
        f"cannot tell the format of {src} (no transforms.json, EG3D dataset.json or COLMAP model); pass format=NAME"
    )


def _looks_like_eg3d(labels: object) -> bool:
    if isinstance(labels, dict):
        labels = list(labels.items())
    if not isinstance(labels, list) or not labels:
        return False
    first = labels[0]
    return isinstance(first, (list, tuple)) and len(first) == 2 and isinstance(first[1], list) and len(first[1]) == 25


def read_source(src: Path, fmt: str = "auto", images: Path | None = None, angle_units: str | None = None) -> PoseSource:
    """Read ``src`` in format ``fmt`` ('auto' detects it); ``images`` overrides where image files live."""
    if fmt not in FORMATS:
        raise SourceError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "auto":
        fmt = detect_format(src)
    elif not src.exists():
        raise SourceError(f"{src} does not exist")
    if fmt == "angles":
        return read_angles(src, images, angle_units)
    return {"eg3d": read_eg3d, "transforms": read_transforms, "colmap": read_colmap}[fmt](src, images)


# ------------------------------------------------------------------------------------------------ EG3D


def read_eg3d(src: Path, images: Path | None = None) -> PoseSource:
    """An EG3D dataset (folder or zip with dataset.json, or the dataset.json itself)."""
    if src.is_file() and src.suffix.lower() == ".zip":
        files = Files(src)
        if not files.exists("dataset.json"):
            raise SourceError(f"{src} has no dataset.json at its top level")
        try:
            meta = json.loads(files.read("dataset.json"))
        except json.JSONDecodeError as exc:
            raise SourceError(f"{src}/dataset.json is not valid JSON: {exc}") from None
    else:
        json_path = src if src.is_file() else src / "dataset.json"
        meta = _load_json(json_path)
        files = Files(images or json_path.parent)
    labels = meta.get("labels") if isinstance(meta, dict) else None
    if isinstance(labels, dict):
        labels = list(labels.items())
    if not _looks_like_eg3d(labels):
        raise SourceError(f'{src}: EG3D dataset.json needs "labels": [[name, [25 numbers]], ...]')
    names, c2w, focal = [], [], []
    for entry in labels:
        if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise SourceError(f"{src}: every EG3D label is [name, [25 numbers]], got {str(entry)[:80]}")
        name, label = entry
        try:
            cv, fx = eg3d_label_parts(np.asarray(label, dtype=np.float64), world="eg3d")
        except (CameraError, ValueError, TypeError) as exc:
            raise SourceError(f"{src}: the label of {name}: {exc}") from None
        names.append(name)
        c2w.append(cv @ GL_TO_CV)
        focal.append(fx)
    n = len(names)
    return PoseSource(
        "eg3d", files, names, cam2world=np.stack(c2w), focal=np.array(focal), principal=np.full([n, 2], 0.5), up="+y"
    )


# ------------------------------------------------------------------------------------------------ transforms.json


def _transform_files(src: Path) -> list[Path]:
    if src.is_file():
        return [src]
    if (src / "transforms.json").is_file():
        return [src / "transforms.json"]
    return sorted(src.glob("transforms_*.json"))  # Blender's train/val/test splits, all of them


def _frame_focal(frame: dict, top: dict, where: str) -> tuple[float, float, float]:
    """(focal / width, cx / width, cy / height) of a frame; per-frame keys win over the file's."""

    def get(key: str) -> object:
        return frame.get(key, top.get(key))

    w, h = get("w"), get("h")
    if get("fl_x") is not None and w:
        f = float(get("fl_x")) / float(w)
    elif get("camera_angle_x") is not None:
        f = 0.5 / math.tan(float(get("camera_angle_x")) / 2)
    else:
        raise SourceError(f"{where}: no focal length (camera_angle_x, or fl_x with w)")
    cx = float(get("cx")) / float(w) if get("cx") is not None and w else 0.5
    cy = float(get("cy")) / float(h) if get("cy") is not None and h else 0.5
    if not (math.isfinite(f) and f > 0):
        raise SourceError(f"{where}: the focal length must be a positive number, got {f}")
    return f, cx, cy


def read_transforms(src: Path, images: Path | None = None) -> PoseSource:
    paths = _transform_files(src)
    if not paths:
        raise SourceError(f"{src} holds no transforms.json or transforms_*.json")
    root = images or paths[0].parent
    files = Files(root)
    names, c2w, focal, principal = [], [], [], []
    for path in paths:
        top = _load_json(path)
        if not isinstance(top, dict) or not isinstance(top.get("frames"), list):
            raise SourceError(f"{path} must be an object with a 'frames' list")
        for k, frame in enumerate(top["frames"]):
            where = f"{path.name} frame {k}"
            if not isinstance(frame, dict) or "file_path" not in frame or "transform_matrix" not in frame:
                raise SourceError(f"{where}: needs 'file_path' and 'transform_matrix'")
            try:
                m = np.asarray(frame["transform_matrix"], dtype=np.float64)
            except (TypeError, ValueError):
                raise SourceError(f"{where}: transform_matrix must be a 4x4 list of numbers") from None
            if m.shape not in ((4, 4), (3, 4)):
                raise SourceError(f"{where}: transform_matrix must be 4x4, got shape {m.shape}")
            full = np.eye(4)
            full[: m.shape[0]] = m
            f, cx, cy = _frame_focal(frame, top, where)
            names.append(_image_name(files, os.path.relpath(path.parent / str(frame["file_path"]), root)))
            c2w.append(full)
            focal.append(f)
            principal.append((cx, cy))
    return PoseSource(
        "transforms", files, names, cam2world=np.stack(c2w), focal=np.array(focal), principal=np.array(principal)
    )


def _image_name(files: Files, name: str) -> str:
    """A relative image name; Blender scenes omit the '.png' of their file paths."""
    name = os.path.normpath(name).replace("\\", "/")
    if not name.lower().endswith(IMAGE_SUFFIXES):
        for suffix in (".png", ".jpg", ".jpeg"):
            if files.exists(name + suffix):
                return name + suffix
    return name


# ------------------------------------------------------------------------------------------------ COLMAP


def _colmap_images_folder(model: Path) -> Path:
    for candidate in (model / "images", model.parent / "images", model.parent.parent / "images"):
        if candidate.is_dir():
            return candidate
    raise SourceError(f"no images folder next to the COLMAP model {model}; pass images=DIR")


def read_colmap(src: Path, images: Path | None = None) -> PoseSource:
    model = find_model(src) if src.is_dir() else None
    if model is None:
        raise SourceError(f"{src} holds no COLMAP model (cameras and images .txt or .bin, also under sparse/0)")
    try:
        cameras, views = read_model(model)
    except ColmapError as exc:
        raise SourceError(str(exc)) from None
    files = Files(images or _colmap_images_folder(model))
    names, c2w, focal, principal, notes = [], [], [], [], []
    for view in sorted(views, key=lambda v: v.name):
        cam = cameras.get(view.camera_id)
        if cam is None:
            raise SourceError(f"{model}: image {view.name} uses camera {view.camera_id}, which cameras.txt lacks")
        names.append(view.name)
        c2w.append(view.cam2world_opencv() @ GL_TO_CV)
        focal.append((cam.fx + cam.fy) / 2 / cam.width)
        principal.append((cam.cx / cam.width, cam.cy / cam.height))
        if abs(cam.fx - cam.fy) > 0.01 * cam.fx:
            notes.append(f"camera {view.camera_id}: fx {cam.fx:g} and fy {cam.fy:g} differ; their mean is used")
        if any(abs(d) > 1e-6 for d in cam.distortion):
            notes.append(
                f"camera {view.camera_id} ({cam.model}) has lens distortion, which is ignored: "
                "undistort first (colmap image_undistorter)"
            )
    return PoseSource(
        "colmap",
        files,
        names,
        cam2world=np.stack(c2w),
        focal=np.array(focal),
        principal=np.array(principal),
        notes=sorted(set(notes)),
    )


# ------------------------------------------------------------------------------------------------ yaw/pitch tables


def _column_unit(columns: list[str], angle: str, units: str | None) -> tuple[str, str]:
    """The column holding ``angle`` ('yaw' / 'pitch' / 'roll') and its unit, from suffixes or ``units``."""
    for suffix, unit in (("_deg", "degrees"), ("_degrees", "degrees"), ("_rad", "radians"), ("_radians", "radians")):
        if angle + suffix in columns:
            return angle + suffix, unit
    if angle in columns:
        if units is None:
            raise SourceError(
                f"say whether '{angle}' is in degrees or radians: pass angle_units=degrees (or radians), or name "
                f"the column {angle}_deg or {angle}_rad"
            )
        return angle, units
    return "", ""


def _rows_from_table(src: Path) -> list[dict[str, object]]:
    if src.suffix.lower() == ".csv":
        try:
            text = src.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise SourceError(f"cannot read {src}: {exc}") from None
        reader = csv.DictReader(io.StringIO(text))
        return [{(k or "").strip().lower(): v for k, v in row.items()} for row in reader]
    data = _load_json(src)
    if isinstance(data, dict) and "camera_angles" in data:
        data = data["camera_angles"]
    if isinstance(data, dict):  # {name: [yaw, pitch(, roll)]}
        rows = []
        for name, value in data.items():
            if not isinstance(value, list) or len(value) not in (2, 3):
                raise SourceError(f"{src}: the angles of {name} must be [yaw, pitch] or [yaw, pitch, roll]")
            rows.append({"file": name, "yaw": value[0], "pitch": value[1], "roll": value[2] if len(value) == 3 else 0})
        return rows
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        return [{str(k).lower(): v for k, v in r.items()} for r in data]
    raise SourceError(f"{src}: expected {{name: [yaw, pitch], ...}} or a list of {{file, yaw, pitch}} objects")


def read_angles(src: Path, images: Path | None = None, units: str | None = None) -> PoseSource:
    """A CSV (header: file, yaw, pitch[, roll]) or JSON table of EpiGRAF angles next to the images."""
    if units is not None and units not in ANGLE_UNITS:
        raise SourceError(f"angle_units must be one of {', '.join(ANGLE_UNITS)}, got {units!r}")
    if not src.is_file():
        raise SourceError(f"{src}: the angles format reads a .csv or .json file of yaw/pitch per image")
    rows = _rows_from_table(src)
    if not rows:
        raise SourceError(f"{src} lists no images")
    columns = list(rows[0])
    name_col = next((c for c in NAME_COLUMNS if c in columns), None)
    if name_col is None:
        raise SourceError(f"{src}: no image column (one of {', '.join(NAME_COLUMNS)}); columns are {columns}")
    yaw_col, yaw_unit = _column_unit(columns, "yaw", units)
    pitch_col, pitch_unit = _column_unit(columns, "pitch", units)
    roll_col, roll_unit = _column_unit(columns, "roll", units or yaw_unit)
    if not yaw_col or not pitch_col:
        raise SourceError(f"{src}: needs yaw and pitch columns; columns are {columns}")
    files = Files(images or src.parent)
    names, angles = [], []
    for k, row in enumerate(rows):
        try:
            values = [float(row[yaw_col]), float(row[pitch_col]), float(row[roll_col]) if roll_col else 0.0]
        except (TypeError, ValueError):
            raise SourceError(f"{src} row {k + 1}: yaw/pitch/roll must be numbers, got {row}") from None
        for i, unit in ((0, yaw_unit), (1, pitch_unit), (2, roll_unit)):
            if unit == "degrees":
                values[i] = math.radians(values[i])
        names.append(_image_name(files, str(row[name_col])))
        angles.append(values)
    arr = np.array(angles, np.float64)
    finite = np.isfinite(arr).all(axis=1)
    if finite.all():
        bad_pitch = (arr[:, 1] < -1e-9) | (arr[:, 1] > math.pi + 1e-9)
        if bad_pitch.any():
            i = int(np.argmax(bad_pitch))
            raise SourceError(
                f"{src}: the pitch of {names[i]} is {arr[i, 1]:.4g} rad, outside [0, pi]: pitch is the polar angle "
                "from +y (pi/2 = level); wrong units, or an elevation (level = 0) instead of a polar angle?"
            )
        if (np.abs(arr[:, 0]) > 2 * math.pi + 1e-9).any():
            raise SourceError(
                f"{src}: yaw beyond 2 pi radians; the angles look like degrees (pass angle_units=degrees)"
            )
    return PoseSource("angles", files, names, angles=arr)

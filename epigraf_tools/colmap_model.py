"""COLMAP sparse models: a small reader for the text format, the binary format through ``pycolmap``.

Text format (https://colmap.github.io/format.html): ``cameras.txt`` lines
``CAMERA_ID MODEL WIDTH HEIGHT PARAMS...`` and ``images.txt`` pairs of lines
``IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` + the image's 2D points (ignored here); ``#``
starts a comment. The pose is world-to-camera in OpenCV axes (x right, y down, looking down +z).

Binary models (``cameras.bin``/``images.bin``) are read with the optional ``pycolmap`` package
(``pip install 'epigraf-tools[colmap]'``) and re-written as text in a temporary folder, so only the
text reader interprets poses, whichever pycolmap version is installed.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import EpigrafError

# model -> (focal length parameter names, whether params after cx, cy are distortion)
FOCAL_PARAMS: dict[str, tuple[str, ...]] = {
    "SIMPLE_PINHOLE": ("f",),
    "PINHOLE": ("fx", "fy"),
    "SIMPLE_RADIAL": ("f",),
    "RADIAL": ("f",),
    "OPENCV": ("fx", "fy"),
    "FULL_OPENCV": ("fx", "fy"),
}


class ColmapError(EpigrafError):
    """A COLMAP model that cannot be read (the message names the file and line)."""


@dataclass
class ColmapCamera:
    """Intrinsics in pixels of one COLMAP camera; ``distortion`` holds the model's remaining params."""

    model: str
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion: tuple[float, ...]


@dataclass
class ColmapImage:
    """One registered image: world-to-camera rotation [3, 3] and translation [3] (OpenCV axes)."""

    name: str
    camera_id: int
    rotation: np.ndarray
    translation: np.ndarray

    def cam2world_opencv(self) -> np.ndarray:
        """[4, 4] camera-to-world (OpenCV axes): the inverse of the stored world-to-camera pose."""
        m = np.eye(4)
        m[:3, :3] = self.rotation.T
        m[:3, 3] = -self.rotation.T @ self.translation
        return m


def quaternion_to_rotation(qw: float, qx: float, qy: float, qz: float) -> np.ndarray:
    """Hamilton unit quaternion -> rotation matrix [3, 3] (COLMAP's convention); refuses a zero quaternion."""
    q = np.array([qw, qx, qy, qz], np.float64)
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm < 1e-12:
        raise ColmapError(f"quaternion {q.tolist()} is zero or not finite")
    if abs(norm - 1) > 1e-3:
        raise ColmapError(f"quaternion {q.tolist()} is not a unit quaternion (norm {norm:.6g}): not a rotation")
    w, x, y, z = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _data_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of the lines that are not comments; blank lines are kept (images.txt needs them)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ColmapError(f"cannot read {path}: {exc}") from None
    return [(i + 1, line.strip()) for i, line in enumerate(text.splitlines()) if not line.lstrip().startswith("#")]


def read_cameras_text(path: Path) -> dict[int, ColmapCamera]:
    cameras: dict[int, ColmapCamera] = {}
    for number, line in _data_lines(path):
        if not line:
            continue
        parts = line.split()
        where = f"{path}:{number}"
        if len(parts) < 5:
            raise ColmapError(f"{where}: expected 'CAMERA_ID MODEL WIDTH HEIGHT PARAMS...', got {line!r}")
        model = parts[1]
        if model not in FOCAL_PARAMS:
            raise ColmapError(
                f"{where}: camera model {model} is not supported (use {', '.join(FOCAL_PARAMS)}; undistort "
                "fisheye captures with colmap image_undistorter first)"
            )
        try:
            cam_id, width, height = int(parts[0]), int(parts[2]), int(parts[3])
            params = [float(p) for p in parts[4:]]
        except ValueError:
            raise ColmapError(f"{where}: camera id, size and parameters must be numbers, got {line!r}") from None
        n_focal = len(FOCAL_PARAMS[model])
        if len(params) < n_focal + 2:
            raise ColmapError(f"{where}: {model} needs at least {n_focal + 2} parameters, got {len(params)}")
        fx = params[0]
        fy = params[1] if n_focal == 2 else fx
        cx, cy = params[n_focal], params[n_focal + 1]
        cameras[cam_id] = ColmapCamera(model, width, height, fx, fy, cx, cy, tuple(params[n_focal + 2 :]))
    return cameras


def read_images_text(path: Path) -> list[ColmapImage]:
    lines = _data_lines(path)
    images: list[ColmapImage] = []
    k = 0
    while k < len(lines):
        number, line = lines[k]
        if not line:  # a blank line may stand for an image's empty point list; skip stray ones
            k += 1
            continue
        parts = line.split()
        where = f"{path}:{number}"
        if len(parts) < 10:
            raise ColmapError(f"{where}: expected 'IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME', got {line!r}")
        try:
            q = [float(v) for v in parts[1:5]]
            t = np.array([float(v) for v in parts[5:8]])
            cam_id = int(parts[8])
        except ValueError:
            raise ColmapError(f"{where}: pose values must be numbers, got {line!r}") from None
        try:
            rot = quaternion_to_rotation(*q)
        except ColmapError as exc:
            raise ColmapError(f"{where}: {exc}") from None
        images.append(ColmapImage(" ".join(parts[9:]), cam_id, rot, t))
        k += 2  # the next line is this image's 2D points
    return images


def find_model(folder: Path) -> Path | None:
    """The folder holding cameras/images (.txt or .bin): ``folder``, ``folder/sparse/0`` or ``folder/sparse``."""
    for candidate in (folder, folder / "sparse" / "0", folder / "sparse"):
        for ext in ("txt", "bin"):
            if (candidate / f"cameras.{ext}").is_file() and (candidate / f"images.{ext}").is_file():
                return candidate
    return None


def read_model(folder: Path) -> tuple[dict[int, ColmapCamera], list[ColmapImage]]:
    """Cameras and images of the model in ``folder`` (text preferred; binary needs pycolmap)."""
    if (folder / "cameras.txt").is_file() and (folder / "images.txt").is_file():
        return read_cameras_text(folder / "cameras.txt"), read_images_text(folder / "images.txt")
    try:
        import pycolmap
    except ImportError:
        raise ColmapError(
            f"{folder} holds a binary COLMAP model: install pycolmap (pip install 'epigraf-tools[colmap]') or "
            "convert it to text with 'colmap model_converter --output_type TXT'"
        ) from None
    try:
        reconstruction = pycolmap.Reconstruction(str(folder))
    except Exception as exc:  # noqa: BLE001 - pycolmap raises its own runtime errors for bad files
        raise ColmapError(f"pycolmap cannot read the binary model in {folder}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="epigraf-colmap-") as tmp:
        reconstruction.write_text(tmp)
        return read_cameras_text(Path(tmp) / "cameras.txt"), read_images_text(Path(tmp) / "images.txt")

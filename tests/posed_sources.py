"""Write a synthetic dataset's known cameras in other tools' formats, for the import round-trip tests.

Each writer puts the images of an ``epigraf dataset synth`` zip into a folder and describes their
cameras as that format does: EG3D labels (EG3D's world: frontal camera on +z), a Blender-style
``transforms.json`` (z-up world, moved and scaled, file paths without '.png'), a COLMAP text model
(y-down world, moved and scaled, world-to-camera quaternions) and a yaw/pitch CSV in degrees.
Importing any of them must give back the synthetic ground truth angles.
"""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from epigraf_tools.camera import GL_TO_CV, Camera

# Blender's z-up world from the model's y-up one: model (x, y, z) = (bx, bz, -by).
MODEL_FROM_BLENDER = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
# A y-down world as COLMAP reconstructions often have (a half turn about x).
MODEL_FROM_COLMAP = np.diag([1.0, -1.0, -1.0])


def synth_truth(zip_path: Path) -> tuple[list[str], np.ndarray, dict]:
    """(image names, angles [N, 3], camera settings) of a synthetic dataset."""
    with zipfile.ZipFile(zip_path) as zf:
        meta = json.loads(zf.read("dataset.json"))
    names = list(meta["camera_angles"])
    return names, np.array([meta["camera_angles"][n] for n in names]), meta["camera"]


def _extract(zip_path: Path, folder: Path, names: list[str], rename=lambda n: n) -> None:
    with zipfile.ZipFile(zip_path) as zf:
        for name in names:
            target = folder / rename(name)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))


def _cameras(zip_path: Path) -> tuple[list[str], list[Camera], int]:
    names, angles, cam = synth_truth(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        res = Image.open(io.BytesIO(zf.read(names[0]))).size[0]
    cams = [Camera(yaw=a[0], pitch=a[1], radius=cam["radius"], fov=cam["fov"]) for a in angles]
    return names, cams, res


def _moved(c2w: np.ndarray, model_from_source: np.ndarray, scale: float, offset: np.ndarray) -> np.ndarray:
    """A model-world cam2world [4, 4] expressed in a source world: x_source = scale * R^T x_model + offset."""
    out = np.eye(4)
    out[:3, :3] = model_from_source.T @ c2w[:3, :3]
    out[:3, 3] = scale * model_from_source.T @ c2w[:3, 3] + offset
    return out


def write_eg3d(zip_path: Path, folder: Path) -> Path:
    names, cams, res = _cameras(zip_path)
    _extract(zip_path, folder, names)
    labels = [[n, c.to_eg3d(res, world="eg3d").tolist()] for n, c in zip(names, cams, strict=True)]
    (folder / "dataset.json").write_text(json.dumps({"labels": labels}))
    return folder


def write_transforms(zip_path: Path, folder: Path, scale: float = 2.5, offset=(0.3, -0.2, 1.1)) -> Path:
    names, cams, res = _cameras(zip_path)
    _extract(zip_path, folder, names, rename=lambda n: n.replace("images/", "train/"))
    f_pixels = cams[0].intrinsics(res)[0, 0]
    frames = [
        {
            "file_path": "./" + n.replace("images/", "train/")[: -len(".png")],
            "transform_matrix": _moved(c.cam2world(), MODEL_FROM_BLENDER, scale, np.array(offset)).tolist(),
        }
        for n, c in zip(names, cams, strict=True)
    ]
    top = {"camera_angle_x": 2 * math.atan(0.5 * res / f_pixels), "frames": frames}
    (folder / "transforms.json").write_text(json.dumps(top))
    return folder


def rotation_to_quaternion(r: np.ndarray) -> list[float]:
    """[qw, qx, qy, qz] of a rotation matrix (Shepperd's method, largest component first)."""
    tr = np.trace(r)
    candidates = [tr, r[0, 0], r[1, 1], r[2, 2]]
    k = int(np.argmax(candidates))
    if k == 0:
        w = math.sqrt(1 + tr) / 2
        q = [w, (r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w), (r[1, 0] - r[0, 1]) / (4 * w)]
    elif k == 1:
        x = math.sqrt(1 + 2 * r[0, 0] - tr) / 2
        q = [(r[2, 1] - r[1, 2]) / (4 * x), x, (r[0, 1] + r[1, 0]) / (4 * x), (r[0, 2] + r[2, 0]) / (4 * x)]
    elif k == 2:
        y = math.sqrt(1 + 2 * r[1, 1] - tr) / 2
        q = [(r[0, 2] - r[2, 0]) / (4 * y), (r[0, 1] + r[1, 0]) / (4 * y), y, (r[1, 2] + r[2, 1]) / (4 * y)]
    else:
        z = math.sqrt(1 + 2 * r[2, 2] - tr) / 2
        q = [(r[1, 0] - r[0, 1]) / (4 * z), (r[0, 2] + r[2, 0]) / (4 * z), (r[1, 2] + r[2, 1]) / (4 * z), z]
    return q


def write_colmap_text(zip_path: Path, folder: Path, scale: float = 3.0, offset=(-0.5, 0.25, 2.0)) -> Path:
    names, cams, res = _cameras(zip_path)
    _extract(zip_path, folder, names)  # images/... beside sparse/0
    model = folder / "sparse" / "0"
    model.mkdir(parents=True)
    f = float(cams[0].intrinsics(res)[0, 0])
    (model / "cameras.txt").write_text(f"# Camera list\n1 PINHOLE {res} {res} {f!r} {f!r} {res / 2} {res / 2}\n")
    lines = ["# Image list with two lines of data per image:"]
    for k, (name, cam) in enumerate(zip(names, cams, strict=True)):
        c2w_cv = _moved(cam.cam2world(), MODEL_FROM_COLMAP, scale, np.array(offset)) @ GL_TO_CV
        rot = c2w_cv[:3, :3].T
        t = -rot @ c2w_cv[:3, 3]
        q = rotation_to_quaternion(rot)
        values = " ".join(repr(float(v)) for v in [*q, *t])
        lines.append(f"{k + 1} {values} 1 {name[len('images/') :]}")
        lines.append("")  # no 2D points
    (model / "images.txt").write_text("\n".join(lines) + "\n")
    (model / "points3D.txt").write_text("# 3D point list (none)\n")
    return folder


def write_angles_csv(zip_path: Path, folder: Path) -> Path:
    names, angles, _ = synth_truth(zip_path)
    _extract(zip_path, folder, names)
    rows = ["file,yaw_deg,pitch_deg"] + [
        f"{n},{math.degrees(a[0])!r},{math.degrees(a[1])!r}" for n, a in zip(names, angles, strict=True)
    ]
    (folder / "poses.csv").write_text("\n".join(rows) + "\n")
    return folder / "poses.csv"


def make_synth(path: Path, num_images: int = 8, resolution: int = 16) -> Path:
    """A tiny ``epigraf dataset synth`` zip (about 0.2 s): the known poses the round trips start from."""
    from epigraf_tools.training.synthetic import SynthConfig, make_synthetic_dataset

    return make_synthetic_dataset(path, SynthConfig(num_images=num_images, resolution=resolution, seed=3))


def read_zip_meta(path: Path) -> dict:
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read("dataset.json"))

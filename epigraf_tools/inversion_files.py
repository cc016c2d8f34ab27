"""``epigraf invert`` as a Python API: picture files in, latent files, tuned models and previews out.

Per image NAME.ext in ``out``:

* NAME.npz: the latent, camera and loss curves (``latent_files``), readable by ``--latent``;
* NAME-pti/: the tuned generator as an ordinary model folder of the model's family (an EG3D model
  gives an EG3D folder), when pivotal tuning ran;
* NAME.png: side by side, the target, its reconstruction and novel views (yaw offsets
  ``PREVIEW_YAWS`` from the found camera), rendered by the (tuned) generator.

Cameras come from the caller (one for all images, or one per image), from an EG3D 25-number label
(``camera_from_label``) or a dataset.json entry (``camera_from_dataset_json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .camera import Camera, CameraError
from .eg3d_model import as_toolkit_model, is_eg3d
from .errors import EpigrafError
from .images import make_grid, save_png, to_uint8
from .inversion import InversionOptions, InversionResult, check_inversion_camera, invert
from .latent_files import save_latent
from .models import Generator
from .rendering import RenderSettings, render_views
from .sampling import background_ws, planes_for
from .target_images import read_target, to_tensor

PREVIEW_YAWS = (-60.0, -30.0, 30.0, 60.0)  # degrees from the found camera, after target and reconstruction
PREPROCESSING = "shorter side resized to the model resolution (Lanczos), centre crop; alpha on the model background"


@dataclass
class InvertedImage:
    """The files written for one picture, and its inversion result."""

    image: Path
    latent: Path
    preview: Path
    tuned_model: Path | None
    result: InversionResult


def parse_camera_label(text: str) -> list[float]:
    """'25 numbers' separated by commas or spaces (EG3D: cam2world row-major, then intrinsics)."""
    parts = [p for p in str(text).replace(",", " ").split() if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise CameraError(f"camera label must be 25 numbers separated by commas or spaces, got {text[:60]!r}") from None
    if len(values) != 25 or not all(math.isfinite(v) for v in values):
        raise CameraError(f"camera label must be 25 finite numbers (EG3D's cam2world + intrinsics), got {len(values)}")
    return values


def camera_from_label(G: Generator, label: Sequence[float], world: str | None = None) -> Camera:
    """A 25-number EG3D label -> a camera on this model's orbit (refused when it is not on it).

    For an EG3D model the label is read as EG3D writes it (its dataset.json, gen_samples.py): in
    EG3D's world, intrinsics normalised at the neural rendering resolution. For an EpiGRAF model the
    default world is the model's own, at the image resolution. ``world`` overrides the family's.
    """
    eg3d = is_eg3d(G)
    res = G.config.label_resolution if eg3d else G.config.img_resolution
    return check_inversion_camera(G, Camera.from_eg3d(label, res, world or ("eg3d" if eg3d else "model")))


def camera_from_dataset_json(G: Generator, path: str | Path, image: str | Path) -> Camera:
    """The pose of ``image`` in a dataset.json: EpiGRAF's ``camera_angles`` {name: [yaw, pitch, roll]}
    or EG3D's ``labels`` [[name, 25 numbers], ...]; names match exactly, else by file name."""
    path, name = Path(path), Path(image).name
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise EpigrafError(f"cannot read dataset json {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise EpigrafError(f"dataset json {path.name} is not valid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise EpigrafError(f"dataset json {path.name} must hold an object with 'camera_angles' or 'labels'")
    angles = _lookup(data.get("camera_angles"), str(image), name)
    if angles is not None:
        values = np.asarray(angles, dtype=np.float64).reshape(-1) if _numeric(angles) else np.zeros(0)
        if values.size != 3 or not np.isfinite(values).all():
            raise EpigrafError(f"camera_angles for {name} in {path.name} must be [yaw, pitch, roll], got {angles!r}")
        cam = Camera(float(values[0]), float(values[1]), G.config.radius, G.config.fov)
        return check_inversion_camera(G, cam)
    label = _lookup(data.get("labels"), str(image), name)
    if label is not None:
        if not _numeric(label) or np.asarray(label).size != 25:
            raise EpigrafError(f"labels entry for {name} in {path.name} is not a 25-number EG3D camera label")
        return camera_from_label(G, [float(v) for v in np.asarray(label).reshape(-1)], world="eg3d")
    raise EpigrafError(f"dataset json {path.name} has no camera for {name} (looked in camera_angles and labels)")


def _numeric(value: Any) -> bool:
    try:
        np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _lookup(table: Any, full: str, name: str) -> Any:
    if isinstance(table, list):  # EG3D: [[name, label], ...]
        table = {str(row[0]): row[1] for row in table if isinstance(row, (list, tuple)) and len(row) == 2}
    if not isinstance(table, dict):
        return None
    if full in table:
        return table[full]
    matches = [v for k, v in table.items() if Path(str(k)).name == name]
    return matches[0] if len(matches) == 1 else None


def check_image_names(images: Sequence[str | Path]) -> list[Path]:
    """The pictures, refusing two with the same file stem (their outputs would overwrite each other)."""
    paths = [Path(p) for p in images]
    if not paths:
        raise EpigrafError("no images given: give at least one picture to invert")
    seen: dict[str, Path] = {}
    for p in paths:
        if p.stem in seen:
            raise EpigrafError(f"images {seen[p.stem]} and {p} would write the same outputs ({p.stem}.npz): rename one")
        seen[p.stem] = p
    return paths


def invert_images(
    G: Generator,
    images: Sequence[str | Path],
    out: str | Path,
    cameras: Camera | Sequence[Camera] | None = None,
    options: InversionOptions | None = None,
    class_index: int | None = None,
    model: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    on_image: Callable[[InvertedImage], None] | None = None,
) -> list[InvertedImage]:
    """Invert each picture file and write its outputs (module docstring) into ``out``.

    Every picture is read and checked before the first inversion starts, so a bad file fails fast.
    ``cameras``: one camera for every image or one per image (default: the model's frontal camera).
    ``progress(done, total)`` counts optimisation steps over all images.
    """
    options = (options or InversionOptions()).validate()
    G = as_toolkit_model(G)
    paths = check_image_names(images)
    cams = _camera_list(G, cameras, len(paths))
    res, white = G.config.img_resolution, G.config.white_back
    targets = [read_target(p, res, white) for p in paths]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: list[InvertedImage] = []
    per_image = None
    for i, (path, target, cam) in enumerate(zip(paths, targets, cams, strict=True)):
        if progress is not None:
            per_image = _offset_progress(progress, i, len(paths))
        result = invert(G, to_tensor(target), cam, options, class_index, per_image)
        written = write_inversion(G, result, target, path, out, model)
        results.append(written)
        if on_image is not None:
            on_image(written)
    return results


def _offset_progress(progress: Callable[[int, int], None], index: int, count: int) -> Callable[[int, int], None]:
    def update(done: int, total: int) -> None:
        progress(index * total + done, count * total)

    return update


def _camera_list(G: Generator, cameras: Camera | Sequence[Camera] | None, n: int) -> list[Camera]:
    if cameras is None or isinstance(cameras, Camera):
        cams = [cameras or Camera.default(G.config)] * n
    else:
        cams = list(cameras)
        if len(cams) != n:
            raise EpigrafError(f"need one camera per image: {n} images, {len(cams)} cameras")
    return [check_inversion_camera(G, c) for c in cams]


def write_inversion(
    G: Generator, result: InversionResult, target: np.ndarray, image: Path, out: Path, model: str | None
) -> InvertedImage:
    """NAME.npz, NAME-pti/ (after PTI) and NAME.png for one inverted picture (target uint8 [R, R, 3])."""
    stem = image.stem
    tuned_dir = None
    if result.generator is not None:
        tuned_dir = result.generator.save_pretrained(out / f"{stem}-pti")
    metadata = {
        "model": model or G.config.name,
        "tuned_model": tuned_dir.name if tuned_dir is not None else None,
        "image": image.name,
        "preprocessing": PREPROCESSING,
        "resolution": G.config.img_resolution,
        "space": result.space,
        "psnr_db": round(result.psnr, 3),
        "lpips": result.lpips_note,
        "timings_s": {k: round(v, 3) for k, v in result.timings.items()},
        "options": dataclasses.asdict(result.options),
        "noise_mode": "const",
        "ray_noise": "none (deterministic rendering)",
        **(G.conditioning_provenance() if is_eg3d(G) else {}),
    }
    res = G.config.img_resolution
    latent = save_latent(
        out / f"{stem}.npz", result.ws, result.space, result.camera, res, result.loss_curve, result.pti_curve, metadata
    )
    renderer = result.generator if result.generator is not None else G
    tiles = [target, *preview_views(renderer, result.ws, result.camera)]
    preview = save_png(out / f"{stem}.png", make_grid(tiles, columns=len(tiles)), {**metadata, "layout": _layout()})
    return InvertedImage(image, latent, preview, tuned_dir, result)


def _layout() -> str:
    yaws = ", ".join(f"{y:+g}" for y in PREVIEW_YAWS)
    return f"target, reconstruction, novel views at yaw {yaws} degrees from the found camera"


def preview_views(G: Generator, ws: torch.Tensor, camera: Camera) -> list[np.ndarray]:
    """uint8 [R, R, 3] renders: the camera itself, then each ``PREVIEW_YAWS`` offset (deterministic rays)."""
    cams = [camera] + [
        camera.replace(yaw=float(np.clip(camera.yaw + math.radians(dy), -2 * math.pi, 2 * math.pi)))
        for dy in PREVIEW_YAWS
    ]
    ws = ws.to(G.device)
    planes = planes_for(G, ws)
    images = render_views(G, planes, cams, RenderSettings(deterministic=True), bg_ws=background_ws(G, ws))["image"]
    return list(to_uint8(images[0]))

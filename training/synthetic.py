"""A procedural multi-view dataset with exact cameras and known geometry.

Each image shows one coloured primitive (sphere, box, torus or capsule) of random size, colour and
orientation at the world origin, ray-cast analytically (sphere tracing of signed distance functions)
through the same EpiGRAF camera model the generator renders with. Shading is view-independent
(albedo times ambient plus a fixed world-space light), because EpiGRAF's colour does not depend on
the view direction. The background (``BACKGROUNDS``) is white by default; black; ``textured``, a sky
map at infinity looked up by ray direction (panorama.py), the same in every view, for training with
the background network (``bg_model: sphere``); or ``none``, an RGBA image whose alpha is the object's
coverage (the ground-truth mask) over white colour. Since every shape is known, the dataset doubles
as a geometry benchmark: ``dataset.json`` stores each image's shape parameters next to its camera.

Layout (the official one): a zip with ``images/NNNNNN.png`` and ``dataset.json`` holding
``camera_angles`` {file: [yaw, pitch, roll]}, ``labels`` [[file, class], ...], ``class_names``,
``shapes`` {file: parameters}, and ``camera`` (fov, radius, near/far, cube_scale, pose distribution).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from epigraf_tools.models.cameras import cam2world_from_angles, generate_rays

from .dataset_cameras import DatasetCameras, PoseDistribution
from .panorama import sky_colour

SHAPE_FAMILIES: tuple[str, ...] = ("sphere", "box", "torus", "capsule")
# What fills the pixels the object does not cover. 'none' writes RGBA: white colour, alpha = coverage.
BACKGROUNDS: tuple[str, ...] = ("white", "black", "textured", "none")
LIGHT_DIR = (0.45, 0.8, 0.4)


@dataclass
class SynthConfig:
    """What ``epigraf dataset synth`` makes; the camera defaults suit a 30-degree Megascans-like setup."""

    num_images: int = 2000
    resolution: int = 64
    seed: int = 0
    shapes: tuple[str, ...] = SHAPE_FAMILIES
    fov: float = 30.0
    radius: float = 1.0
    ray_start: float = 0.7
    ray_end: float = 1.3
    cube_scale: float = 0.35
    # Pose distribution: yaw ~ U(-yaw_range, yaw_range), pitch ~ U(pi/2 - pitch_range, pi/2 + pitch_range).
    yaw_range: float = math.pi
    pitch_range: float = 0.5
    # Object size: the bounding radius of every shape lies in [min_size, max_size] world units.
    min_size: float = 0.12
    max_size: float = 0.22
    supersample: int = 2
    background: str = "white"  # one of BACKGROUNDS
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shapes = tuple(self.shapes)
        unknown = [s for s in self.shapes if s not in SHAPE_FAMILIES]
        if unknown:
            raise ValueError(f"unknown shape(s) {unknown}; choose from {', '.join(SHAPE_FAMILIES)}")
        if self.num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {self.num_images}")
        if self.resolution < 8 or self.resolution > 1024:
            raise ValueError(f"resolution must lie in [8, 1024], got {self.resolution}")
        if not 0 < self.min_size <= self.max_size:
            raise ValueError("need 0 < min_size <= max_size")
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}; choose from {', '.join(BACKGROUNDS)}")

    @property
    def white_back(self) -> bool:
        """Whether a model of this data should composite over white (EpiGRAF's ``white_back``)."""
        return self.background in ("white", "none")


# ------------------------------------------------------------------------------------------------
# Signed distance functions (points [N, 3] in the shape's local frame)
# ------------------------------------------------------------------------------------------------


def sdf_sphere(p: torch.Tensor, params: dict) -> torch.Tensor:
    return p.norm(dim=-1) - params["radius"]


def sdf_box(p: torch.Tensor, params: dict) -> torch.Tensor:
    half = torch.tensor(params["half_extents"], dtype=p.dtype)
    rounding = params["rounding"]
    q = p.abs() - (half - rounding)
    outside = q.clamp_min(0).norm(dim=-1)
    inside = q.max(dim=-1).values.clamp_max(0)
    return outside + inside - rounding


def sdf_torus(p: torch.Tensor, params: dict) -> torch.Tensor:
    ring = torch.stack([p[:, [0, 2]].norm(dim=-1) - params["major"], p[:, 1]], dim=-1)
    return ring.norm(dim=-1) - params["minor"]


def sdf_capsule(p: torch.Tensor, params: dict) -> torch.Tensor:
    h = params["half_length"]
    y = p[:, 1].clamp(-h, h)
    q = p - torch.stack([torch.zeros_like(y), y, torch.zeros_like(y)], dim=-1)
    return q.norm(dim=-1) - params["radius"]


SDFS: dict[str, Callable[[torch.Tensor, dict], torch.Tensor]] = {
    "sphere": sdf_sphere,
    "box": sdf_box,
    "torus": sdf_torus,
    "capsule": sdf_capsule,
}


def random_rotation(rng: np.random.RandomState) -> np.ndarray:
    """A uniformly random rotation matrix (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.randn(3, 3))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def random_shape(family: str, rng: np.random.RandomState, min_size: float, max_size: float) -> dict:
    """Parameters of one shape whose bounding radius is uniform in [min_size, max_size]."""
    size = float(rng.uniform(min_size, max_size))
    hue = rng.uniform()
    color = _hsv_to_rgb(hue, rng.uniform(0.55, 0.95), rng.uniform(0.55, 0.95))
    params: dict = {"family": family, "bound_radius": size, "color": color}
    if family == "sphere":
        params["radius"] = size
    elif family == "box":
        dims = rng.uniform(0.5, 1.0, size=3)
        dims = dims / np.linalg.norm(dims) * size  # corner at distance `size`
        params["half_extents"] = dims.tolist()
        params["rounding"] = float(0.1 * dims.min())
    elif family == "torus":
        minor_frac = rng.uniform(0.25, 0.45)
        params["minor"] = size * minor_frac
        params["major"] = size - params["minor"]
    elif family == "capsule":
        radius = size * rng.uniform(0.35, 0.55)
        params["radius"] = radius
        params["half_length"] = size - radius
    params["rotation"] = (np.eye(3) if family == "sphere" else random_rotation(rng)).tolist()
    return params


def shape_sdf(params: dict, points_world: torch.Tensor) -> torch.Tensor:
    """Signed distance of world points [N, 3] to the shape (negative inside)."""
    rot = torch.tensor(params["rotation"], dtype=points_world.dtype)
    local = points_world @ rot  # rot maps local -> world, so world @ rot = rot^T world
    return SDFS[params["family"]](local, params)


def _hsv_to_rgb(h: float, s: float, v: float) -> list[float]:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    return [list(c) for c in [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]][i]


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def render_shape(params: dict, yaw: float, pitch: float, cfg: SynthConfig) -> np.ndarray:
    """Ray-cast one shape from one camera over ``cfg.background``; returns uint8 [H, W, 3]
    ([H, W, 4] for background 'none': the alpha channel is the object's anti-aliased coverage)."""
    res = cfg.resolution * cfg.supersample
    angles = torch.tensor([[yaw, pitch, 0.0]], dtype=torch.float64)
    c2w = cam2world_from_angles(angles, cfg.radius)
    origins, dirs, _ = generate_rays(c2w, cfg.fov, res, res)
    o, d = origins[0], dirs[0]
    t = torch.full((o.shape[0],), cfg.ray_start, dtype=torch.float64)
    hit = torch.zeros(o.shape[0], dtype=torch.bool)
    for _ in range(96):
        dist = shape_sdf(params, o + d * t[:, None])
        hit |= dist.abs() < 1e-5
        t = torch.where(hit, t, t + dist.clamp_min(0) * 0.9 + 1e-6)
        if bool((hit | (t > cfg.ray_end)).all()):
            break
    hit &= t <= cfg.ray_end
    pts = (o + d * t[:, None])[hit]
    normals = _sdf_normals(params, pts)
    light = torch.tensor(LIGHT_DIR, dtype=torch.float64)
    light = light / light.norm()
    shade = 0.35 + 0.65 * (normals @ light).clamp_min(0)
    color = torch.tensor(params["color"], dtype=torch.float64)
    img = background_colour(cfg.background, d)
    img[hit] = shade[:, None] * color[None]
    if cfg.background == "none":
        img = torch.cat([img, hit.to(img.dtype)[:, None]], dim=-1)
    img = img.reshape(cfg.resolution, cfg.supersample, cfg.resolution, cfg.supersample, -1).mean(dim=(1, 3))
    return (img.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def background_colour(background: str, directions: torch.Tensor) -> torch.Tensor:
    """Colour [N, 3] in [0, 1] behind the object along rays [N, 3] (white under 'none's alpha)."""
    if background == "textured":
        return sky_colour(directions)
    fill = 0.0 if background == "black" else 1.0
    return torch.full((directions.shape[0], 3), fill, dtype=directions.dtype)


def _sdf_normals(params: dict, pts: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    offsets = torch.eye(3, dtype=pts.dtype) * eps
    grads = [shape_sdf(params, pts + e) - shape_sdf(params, pts - e) for e in offsets]
    n = torch.stack(grads, dim=-1)
    return n / n.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def sample_poses(rng: np.random.RandomState, n: int, cfg: SynthConfig) -> np.ndarray:
    """[n, 3] (yaw, pitch, roll) from the documented distribution."""
    yaw = rng.uniform(-cfg.yaw_range, cfg.yaw_range, size=n)
    pitch = rng.uniform(math.pi / 2 - cfg.pitch_range, math.pi / 2 + cfg.pitch_range, size=n)
    return np.stack([yaw, pitch, np.zeros(n)], axis=1)


def dataset_cameras(cfg: SynthConfig) -> DatasetCameras:
    """The cameras the images are rendered with, as dataset.json's ``camera`` object describes them
    (training then uses them by default): yaw and pitch are uniform, as ``sample_poses`` draws them."""
    poses = PoseDistribution("uniform", 0.0, cfg.yaw_range, math.pi / 2, cfg.pitch_range)
    return DatasetCameras(cfg.fov, cfg.radius, cfg.ray_start, cfg.ray_end, cfg.cube_scale, cfg.white_back, poses)


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run a block with ``threads`` intra-op torch threads (None: leave the setting alone), then restore it."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def make_synthetic_dataset(
    out_zip: str | Path,
    cfg: SynthConfig,
    progress: Callable[[int, int], None] | None = None,
    threads: int | None = 1,
) -> Path:
    """Render ``cfg.num_images`` views of random shapes into ``out_zip`` (written atomically).

    ``threads``: torch threads while rendering; one by default. Each image is many small tensor ops
    (a few thousand rays marched step by step), where thread start-up and synchronisation cost more
    than they save: on a shared 2-core machine the default thread pool made the README's 3000-image
    run take 17 minutes, 20x longer than one thread. None keeps torch's current setting.
    """
    with torch_threads(threads):
        return _make_synthetic_dataset(Path(out_zip), cfg, progress)


def _make_synthetic_dataset(out_zip: Path, cfg: SynthConfig, progress: Callable[[int, int], None] | None) -> Path:
    from PIL import Image

    from epigraf_tools.atomic import atomic_path

    rng = np.random.RandomState(cfg.seed)
    poses = sample_poses(rng, cfg.num_images, cfg)
    meta: dict = {
        "camera_angles": {},
        "labels": [],
        "class_names": list(cfg.shapes),
        "shapes": {},
        "camera": {**dataset_cameras(cfg).to_json(), "background": cfg.background},
        "synth_config": {k: v for k, v in asdict(cfg).items() if k != "extra"},
    }
    with atomic_path(out_zip) as tmp, zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        for i in range(cfg.num_images):
            label = i % len(cfg.shapes)
            params = random_shape(cfg.shapes[label], rng, cfg.min_size, cfg.max_size)
            yaw, pitch, roll = poses[i]
            img = render_shape(params, float(yaw), float(pitch), cfg)
            name = f"images/{i:06d}.png"
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
            meta["camera_angles"][name] = [float(yaw), float(pitch), float(roll)]
            meta["labels"].append([name, label])
            meta["shapes"][name] = params
            if progress is not None:
                progress(i + 1, cfg.num_images)
        zf.writestr("dataset.json", json.dumps(meta))
    return out_zip

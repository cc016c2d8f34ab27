"""Images for seeds: the ``epigraf sample`` command as a Python API.

``generate_samples`` yields in-memory results; ``save_samples`` writes them: one PNG per seed (and
view), optional depth / normals / alpha maps as PNG (for viewing) and .npy (for values), an optional
grid, and a sidecar JSON per seed. Every PNG also carries its metadata (seed, psi, cutoff, class,
camera, model, ...) as JSON in a tEXt chunk named 'epigraf' (``images.read_png_metadata``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_text_atomic
from .camera import Camera
from .distributed import DistContext, barrier, shard
from .eg3d_model import as_toolkit_model, is_eg3d
from .errors import EpigrafError
from .images import (
    alpha_to_uint8,
    depth_to_uint8,
    make_grid,
    normals_to_uint8,
    save_npy,
    save_png,
    to_uint8,
)
from .latents import SampleRequest, Truncation, provenance, ws_from_seeds
from .models import Generator
from .rendering import RenderSettings, check_cameras, render_views

Progress = Callable[[int, int], None]  # (done, total)
IMAGE_ENCODING = "round((clamp(x, -1, 1) * 0.5 + 0.5) * 255)"


@dataclass
class Sample:
    """One rendered view of one seed (arrays on the CPU)."""

    seed: int
    view: int
    class_index: int | None
    camera: Camera
    image: np.ndarray  # uint8 [H, W, 3]
    alpha: np.ndarray  # float32 [H, W], opacity in [0, 1]
    depth: np.ndarray  # float32 [H, W], distance from the camera centre along the ray (0: no surface)
    normals: np.ndarray | None  # float32 [H, W, 3], unit, camera frame (x right, y up, z to the viewer)


def check_batch_size(batch_size: int) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise EpigrafError(f"batch size must be a positive integer, got {batch_size!r}")
    return batch_size


def planes_for(G: Generator, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
    """Tri-planes [B, 3, C, R, R], computed one sample at a time so results never depend on batching."""
    with torch.inference_mode():
        return torch.cat([G.planes(ws[i : i + 1], noise_mode=noise_mode) for i in range(ws.shape[0])])


def background_ws(G: Generator, ws: torch.Tensor) -> torch.Tensor | None:
    """The ws the renderer needs beyond the planes: EpiGRAF's background network's, EG3D's super-resolution's."""
    renderer_ws = getattr(G, "renderer_ws", None)
    if renderer_ws is not None:
        return renderer_ws(ws)
    return G.synthesis.background_ws(ws) if hasattr(G.synthesis, "background_ws") else None


def generate_samples(
    G: Generator,
    seeds: Sequence[int],
    cameras: Sequence[Camera] | None = None,
    truncation: Truncation = Truncation(),
    class_index: int | None = None,
    settings: RenderSettings | None = None,
    batch_size: int = 4,
    normals: bool = False,
    progress: Progress | None = None,
) -> Iterator[Sample]:
    """Render every seed from every camera (default: the model's frontal camera), batch by batch.

    The ray noise of seed s comes from ``torch.Generator().manual_seed(s)``, so a seed gives the same
    image at any batch size, on any rank, and from every command (sample, video, interpolate).
    """
    G = as_toolkit_model(G)
    settings = (settings or RenderSettings()).validate()
    request = SampleRequest.check(seeds, truncation, class_index, G)
    check_batch_size(batch_size)
    cams = list(cameras) if cameras else [Camera.default(G.config)]
    device = G.device
    seeds, class_index = list(request.seeds), request.class_index
    for start in range(0, len(seeds), batch_size):
        batch = seeds[start : start + batch_size]
        ws, classes = ws_from_seeds(G, batch, truncation, class_index)
        planes = planes_for(G, ws.to(device), settings.noise_mode)
        out = render_views(G, planes, cams, settings, noise_keys=batch, bg_ws=background_ws(G, ws), normals=normals)
        images = to_uint8(out["image"].flatten(0, 1)).reshape(len(batch), len(cams), *out["image"].shape[-2:], 3)
        alpha = out["alpha"][:, :, 0].float().cpu().numpy()
        depth = out["depth"][:, :, 0].float().cpu().numpy()
        nrm = out["normals"].permute(0, 1, 3, 4, 2).float().cpu().numpy() if normals else None
        for i, seed in enumerate(batch):
            for v, cam in enumerate(cams):
                yield Sample(
                    seed, v, classes[i], cam, images[i, v], alpha[i, v], depth[i, v], None if nrm is None else nrm[i, v]
                )
        if progress is not None:
            progress(min(start + batch_size, len(seeds)), len(seeds))


def sample_metadata(
    G: Generator,
    sample: Sample,
    truncation: Truncation,
    settings: RenderSettings,
    model: str | None,
) -> dict[str, Any]:
    """Everything needed to reproduce (and interpret) one output image."""
    res = settings.resolved_resolution(G)
    return {
        **provenance(G, model, truncation, sample.seed, sample.class_index),
        "view": sample.view,
        "camera": sample.camera.to_dict(),
        "cam2world_opengl": (sample.camera.cam2world("opengl").round(8) + 0.0).tolist(),
        "eg3d_label": (eg3d_label(G, sample.camera, res).round(8) + 0.0).tolist(),
        "resolution": res,
        "deterministic": settings.deterministic,
        "noise_mode": settings.noise_mode,
        "layer": settings.layer,
        "ray_noise": "none" if settings.deterministic else f"torch.Generator().manual_seed({sample.seed})",
        "z": "numpy.random.RandomState(seed).randn(1, z_dim)",
        "image_encoding": IMAGE_ENCODING,
        **family_provenance(G, settings),
    }


def family_provenance(G: Generator, settings: RenderSettings) -> dict[str, Any]:
    """What a sidecar adds for a model of another family (EG3D: image kind, conditioning label); {} for EpiGRAF."""
    return G.render_provenance(settings) if is_eg3d(G) else {}


def eg3d_label(G: Generator, camera: Camera, resolution: int) -> np.ndarray:
    """The 25-number label of ``camera``: for an EG3D model the one its renderer used (EG3D world), else model world."""
    if is_eg3d(G):
        return G.label(camera)[0].double().numpy()
    return camera.to_eg3d(resolution)


def output_stem(seed: int, view: int, num_views: int) -> str:
    """seed0042 (one view) or seed0042_view03."""
    return f"seed{seed:04d}" if num_views == 1 else f"seed{seed:04d}_view{view:02d}"


def save_samples(
    G: Generator,
    seeds: Sequence[int],
    out_dir: str | Path,
    cameras: Sequence[Camera] | None = None,
    truncation: Truncation = Truncation(),
    class_index: int | None = None,
    settings: RenderSettings | None = None,
    batch_size: int = 4,
    grid: bool = False,
    depth: bool = False,
    normals: bool = False,
    alpha: bool = False,
    model: str | None = None,
    ctx: DistContext | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Render and write seeds into ``out_dir``; returns the files this process wrote.

    Files per seed (``_viewNN`` added when there are several cameras): seedNNNN.png, and with the
    options seedNNNN_depth.png/.npy, seedNNNN_normals.png/.npy, seedNNNN_alpha.png/.npy, plus
    seedNNNN.json (metadata of every view and the file list). ``grid`` adds grid.png (rows: seeds,
    columns: views; a square-ish tiling for a single view). Under torchrun (``ctx``) this rank
    renders seeds[rank::world] and rank 0 writes the grid after all ranks finished.
    """
    G = as_toolkit_model(G)
    settings = (settings or RenderSettings()).validate()
    request = SampleRequest.check(seeds, truncation, class_index, G)  # all seeds, before any rank renders
    seeds, class_index = list(request.seeds), request.class_index
    ctx = ctx or DistContext()
    cams = list(cameras) if cameras else [Camera.default(G.config)]
    check_cameras(G, cams)  # before the output folder exists
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    nv = len(cams)
    near, far = G.config.ray_start, G.config.ray_end
    written: list[Path] = []
    per_seed: dict[int, dict[str, Any]] = {}
    mine = shard(list(seeds), ctx.rank, ctx.world_size)  # empty on a rank beyond the seed count
    samples = generate_samples(G, mine, cams, truncation, class_index, settings, batch_size, normals, progress)
    for s in samples if mine else ():
        stem = output_stem(s.seed, s.view, nv)
        meta = sample_metadata(G, s, truncation, settings, model)
        files = [save_png(out / f"{stem}.png", s.image, meta)]
        shift = float(np.linalg.norm(s.camera.position)) - G.config.radius
        if depth:
            depth_png = depth_to_uint8(s.depth, s.alpha, near + shift, far + shift)
            files.append(save_png(out / f"{stem}_depth.png", depth_png))
            files.append(save_npy(out / f"{stem}_depth.npy", s.depth.astype(np.float32)))
        if normals:
            files.append(save_png(out / f"{stem}_normals.png", normals_to_uint8(s.normals)))
            files.append(save_npy(out / f"{stem}_normals.npy", s.normals.astype(np.float32)))
        if alpha:
            files.append(save_png(out / f"{stem}_alpha.png", alpha_to_uint8(s.alpha)))
            files.append(save_npy(out / f"{stem}_alpha.npy", s.alpha.astype(np.float32)))
        written.extend(files)
        entry = per_seed.setdefault(s.seed, {k: meta[k] for k in meta if k not in _VIEW_KEYS} | {"views": []})
        entry["views"].append({k: meta[k] for k in _VIEW_KEYS} | {"files": [f.name for f in files]})
        if s.view == nv - 1:
            written.append(write_text_atomic(out / f"seed{s.seed:04d}.json", json.dumps(entry, indent=2) + "\n"))
    if grid:
        barrier(ctx)
        if ctx.is_main:
            written.append(write_grid(out, list(seeds), nv, fill=255 if G.config.white_back else 0))
    return written


_VIEW_KEYS = ("view", "camera", "cam2world_opengl", "eg3d_label")


def write_grid(out_dir: Path, seeds: Sequence[int], num_views: int, fill: int = 0) -> Path:
    """grid.png from the per-seed PNGs already in ``out_dir`` (so every rank's images are included).

    ``fill`` colours unused cells: the model's background (255 for white-background models).
    """
    from PIL import Image

    tiles = []
    for seed in seeds:
        for v in range(num_views):
            path = out_dir / f"{output_stem(seed, v, num_views)}.png"
            if not path.is_file():
                raise EpigrafError(f"cannot build the grid: {path.name} is missing")
            with Image.open(path) as img:
                tiles.append(np.asarray(img.convert("RGB")))
    columns = num_views if num_views > 1 else None
    meta = {"seeds": list(seeds), "views": num_views, "layout": "rows: seeds, columns: views"}
    return save_png(out_dir / "grid.png", make_grid(tiles, columns, fill=fill), meta)

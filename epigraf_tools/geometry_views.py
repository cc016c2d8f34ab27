"""Stills and videos of a model's lit iso-surface: ``epigraf sample/video --shading geometry`` as a Python API.

Per seed, the density is sampled once on a grid over the tri-plane cube (``volume_resolution``
points per axis, raw values, as ``export-volume`` writes them) and the level set at ``level`` is
rendered by ``geometry_render`` from every camera. The level defaults to the model's recommended
one (``isolevel.default_level``, sigma = 25), or the isodata level of the volume when that lies
outside its values (small or undertrained models), exactly as ``export-mesh --level auto`` chooses.
Files are named like the colour commands' (seedNNNN.png / .mp4, grid.png / .mp4) and their
metadata says ``"shading": "geometry"`` with the level and how it was chosen.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_text_atomic
from .camera import Camera
from .errors import EpigrafError
from .geometry_export import seed_planes, seed_provenance
from .geometry_render import IsoSurface, Lighting, model_slab, render_isosurface
from .images import alpha_to_uint8, depth_to_uint8, grid_columns, make_grid, normals_to_uint8, save_npy, save_png
from .isolevel import choose_level, default_level, stats_of
from .latents import SampleRequest, Truncation
from .models import Generator
from .volume import extract_density, make_volume_grid

Progress = Callable[[int, int], None]  # (done, total)
SHADING = ("color", "geometry")


@dataclass(frozen=True)
class GeometryShading:
    """How a seed's iso-surface is made and lit.

    volume_resolution: grid points per axis over the model's cube (the surface's detail; 256 is
    enough for 256-pixel images); level: iso level on raw density (None: the model's recommended
    level, else isodata); step: march step in voxels; method: the volume extraction path.
    """

    volume_resolution: int = 256
    level: float | None = None
    step: float = 0.5
    method: str = "auto"
    lighting: Lighting = field(default_factory=Lighting)

    def validate(self) -> GeometryShading:
        make_volume_grid(1.0, self.volume_resolution)  # the volume module's own checks and messages
        if self.level is not None and (isinstance(self.level, bool) or not np.isfinite(self.level)):
            raise EpigrafError(f"level must be a finite number or None (auto), got {self.level!r}")
        self.lighting.validate()
        return self


@dataclass
class SeedSurface:
    """One seed's iso-surface and the provenance that goes into its files' metadata."""

    surface: IsoSurface
    level: float
    level_source: str
    metadata: dict[str, Any]


def seed_surface(
    G: Generator,
    seed: int,
    truncation: Truncation,
    class_index: int | None,
    shading: GeometryShading,
    model: str | None = None,
) -> SeedSurface:
    """Sample seed's raw density on the cube and prepare its level set (the level as ``export-mesh`` picks it)."""
    planes, cls = seed_planes(G, seed, truncation, class_index)
    grid = make_volume_grid(G.config.cube_scale, shading.volume_resolution)
    vol = extract_density(G, planes, grid=grid, value="raw", method=shading.method)
    if shading.level is not None:
        level, source = float(shading.level), "given"
    else:
        level, source = choose_level(default_level(G.config, "raw"), stats_of(vol))
    meta = {
        **seed_provenance(G, model, seed, truncation, cls),
        "shading": "geometry",
        "level": level,
        "level_source": source,
        "value": "raw",
        "volume_grid": grid.to_dict(),
    }
    return SeedSurface(IsoSurface(vol, grid.voxel_size, grid.origin, level), level, source, meta)


def _checked(G: Generator, seeds: Sequence[int], truncation: Truncation, class_index, shading, resolution):
    request = SampleRequest.check(seeds, truncation, class_index, G)
    shading = (shading or GeometryShading()).validate()
    res = resolution or G.config.img_resolution
    if isinstance(res, bool) or not isinstance(res, int) or res < 2:
        raise EpigrafError(f"resolution must be an integer number of pixels >= 2, got {res!r}")
    return list(request.seeds), request.class_index, shading, res


def save_geometry_samples(
    G: Generator,
    seeds: Sequence[int],
    out_dir: str | Path,
    cameras: Sequence[Camera] | None = None,
    truncation: Truncation = Truncation(),
    class_index: int | str | None = None,
    resolution: int | None = None,
    shading: GeometryShading | None = None,
    grid: bool = False,
    depth: bool = False,
    normals: bool = False,
    alpha: bool = False,
    model: str | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """Write each seed's lit iso-surface as seedNNNN.png (``_viewNN`` per extra camera) + seedNNNN.json.

    ``depth``/``normals``/``alpha`` add the surface's maps (PNG + .npy; alpha is the hit mask), ``grid``
    a grid.png (rows: seeds, columns: views). ``resolution`` defaults to the model's image size.
    Returns the files written.
    """
    seeds, class_index, shading, res = _checked(G, seeds, truncation, class_index, shading, resolution)
    cams = list(cameras) if cameras else [Camera.default(G.config)]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slab = model_slab(G.config)
    written: list[Path] = []
    tiles: list[np.ndarray] = []
    for n, seed in enumerate(seeds):
        seed_geo = seed_surface(G, seed, truncation, class_index, shading, model)
        views = render_isosurface(seed_geo.surface, cams, res, shading.lighting, slab, shading.step)
        entry = {**seed_geo.metadata, "resolution": res, "views": []}
        for v, cam in enumerate(cams):
            stem = f"seed{seed:04d}" if len(cams) == 1 else f"seed{seed:04d}_view{v:02d}"
            meta = {**seed_geo.metadata, "resolution": res, "view": v, "camera": cam.to_dict()}
            files = [save_png(out / f"{stem}.png", views["image"][v], meta)]
            mask = views["mask"][v].astype(np.float32)
            if depth:
                near, far = (
                    slab(cam) if slab is not None else (float(views["depth"][v].min()), float(views["depth"][v].max()))
                )
                files.append(save_png(out / f"{stem}_depth.png", depth_to_uint8(views["depth"][v], mask, near, far)))
                files.append(save_npy(out / f"{stem}_depth.npy", views["depth"][v]))
            if normals:
                files.append(save_png(out / f"{stem}_normals.png", normals_to_uint8(views["normals"][v])))
                files.append(save_npy(out / f"{stem}_normals.npy", views["normals"][v]))
            if alpha:
                files.append(save_png(out / f"{stem}_alpha.png", alpha_to_uint8(mask)))
                files.append(save_npy(out / f"{stem}_alpha.npy", mask))
            entry["views"].append({"view": v, "camera": cam.to_dict(), "files": [f.name for f in files]})
            written.extend(files)
            if grid:
                tiles.append(views["image"][v])
        written.append(write_text_atomic(out / f"seed{seed:04d}.json", json.dumps(entry, indent=2) + "\n"))
        if progress is not None:
            progress(n + 1, len(seeds))
    if grid:
        columns = len(cams) if len(cams) > 1 else None
        meta = {"seeds": seeds, "views": len(cams), "shading": "geometry", "layout": "rows: seeds, columns: views"}
        written.append(save_png(out / "grid.png", make_grid(tiles, columns), meta))
    return written


def geometry_frames(
    surfaces: Sequence[IsoSurface],
    cameras: Sequence[Camera],
    resolution: int,
    shading: GeometryShading,
    slabs: Sequence[Any] | None = None,
    columns: int | None = None,
    batch: int = 4,
) -> Iterable[np.ndarray]:
    """Frames uint8 [H, W, 3]: every surface rendered from the same camera, tiled (``columns``), per camera."""
    slabs = list(slabs) if slabs is not None else [None] * len(surfaces)
    cols = columns or (len(surfaces) if len(surfaces) <= 4 else grid_columns(len(surfaces)))
    for start in range(0, len(cameras), batch):
        cams = list(cameras[start : start + batch])
        rendered = [
            render_isosurface(s, cams, resolution, shading.lighting, slab, shading.step)["image"]
            for s, slab in zip(surfaces, slabs, strict=True)
        ]
        for i in range(len(cams)):
            yield rendered[0][i] if len(surfaces) == 1 else make_grid([r[i] for r in rendered], cols)


def render_geometry_video(
    G: Generator,
    seeds: Sequence[int],
    cameras: Sequence[Camera],
    out_dir: str | Path,
    truncation: Truncation = Truncation(),
    class_index: int | str | None = None,
    resolution: int | None = None,
    shading: GeometryShading | None = None,
    options: Any = None,
    grid: bool = False,
    columns: int | None = None,
    trajectory: str | None = None,
    model: str | None = None,
    progress: Progress | None = None,
) -> list[Path]:
    """One mp4 of the lit iso-surface per seed (seedNNNN.mp4 + .json), or with ``grid`` one grid.mp4 of all.

    ``options``: ``video.VideoOptions`` (fps, crf). Frames are encoded as they are rendered; a grid
    keeps every seed's surface in memory (one volume per seed) rather than its frames.
    """
    from .video import VideoOptions, write_mp4

    seeds, class_index, shading, res = _checked(G, seeds, truncation, class_index, shading, resolution)
    if not cameras:
        raise EpigrafError("the trajectory has no cameras")
    options = (options or VideoOptions()).validate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slab = model_slab(G.config)
    encoding = {"frames": len(cameras), "fps": options.fps, "crf": options.crf, "resolution": res}
    encoding |= {"trajectory": trajectory, "cameras": [c.to_dict() for c in cameras]}
    groups = [[s] for s in seeds] if not grid else [seeds]
    written: list[Path] = []
    done = 0
    total = len(cameras) * len(groups)
    for group in groups:
        geo = [seed_surface(G, s, truncation, class_index, shading, model) for s in group]
        stem = f"seed{group[0]:04d}" if not grid else "grid"
        meta = {"seeds": group, "shading": "geometry", "levels": [g.level for g in geo], **encoding}
        meta["level_sources"] = [g.level_source for g in geo]
        meta["provenance"] = [g.metadata for g in geo]

        def report(d: int, _t: int, base: int = done) -> None:
            if progress is not None:
                progress(base + d, total)

        frames = geometry_frames([g.surface for g in geo], cameras, res, shading, [slab] * len(geo), columns)
        frames = _counted(frames, report)
        comment = json.dumps({k: meta[k] for k in ("seeds", "shading", "levels", "frames", "fps")})
        written.append(write_mp4(out / f"{stem}.mp4", frames, options, comment))
        written.append(write_text_atomic(out / f"{stem}.json", json.dumps(meta, indent=2) + "\n"))
        done += len(cameras)
    return written


def _counted(frames: Iterable[np.ndarray], report: Progress) -> Iterable[np.ndarray]:
    n = 0
    for frame in frames:
        yield frame
        n += 1
        report(n, 0)


__all__ = [
    "SHADING",
    "GeometryShading",
    "SeedSurface",
    "geometry_frames",
    "render_geometry_video",
    "save_geometry_samples",
    "seed_surface",
]

"""The paper's geometry comparison in one call: volumes, meshes, one ChimeraX script and turntable videos.

The EpiGRAF paper compares geometry across models as 512^3 density volumes (MRC) shown in ChimeraX
as iso-surfaces at each model's level, step 1, full lighting, truncation 0.7, turned with ``turn`` and
recorded with ``movie record``. ``compare_geometry`` writes, into ``out``:

* ``<label>/seedNNNN.mrc|.json|.cxc`` per model and seed (``export_volumes``), and
  ``<label>/seedNNNN.<fmt>|.mesh.json`` (``mesh_volume_file`` on that volume, the model's level);
* ``compare.cxc``: opens every volume (rows: seeds, columns: models) at its level, ``tile``s them,
  ``lighting full``, and records ``compare.mp4`` as each model turns about its own axis;
* ``turntable_seedNNNN.mp4`` (+ .json): the same iso-surfaces rendered by ``geometry_render``, the
  models side by side, for anyone without ChimeraX;
* ``compare.json``: models, seeds, levels and files.

Only the family-neutral toolkit API is used (export_volumes, mesh_volume_file, the Camera type and
the model's config), so any family those support is compared the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_text_atomic
from .camera import Camera
from .errors import EpigrafError
from .geometry_export import ExportHooks, GridOptions, MeshOptions, export_volumes, mesh_volume_file, output_folder
from .geometry_render import IsoSurface, model_slab
from .geometry_views import GeometryShading, geometry_frames
from .images import make_grid
from .latents import Truncation
from .mrc import chimerax_model_lines, read_mrc, turntable_commands
from .trajectories import get_trajectory

PAPER_RESOLUTION = 512
PAPER_TRUNCATION = 0.7
GeneratorSource = Any  # a Generator of any family, or a zero-argument function that loads one


@dataclass
class CompareReport:
    """What ``compare_geometry`` wrote (paths) and the level each volume was shown at."""

    out: Path
    script: Path
    videos: list[Path]
    summary: Path
    models: list[dict[str, Any]] = field(default_factory=list)


def folder_names(labels: Sequence[str]) -> list[str]:
    """One folder name per model label: its last path part, made file-safe; equal labels are an error."""
    if not labels:
        raise EpigrafError("models is empty: name at least one model (e.g. --models default,./my_model)")
    seen: dict[str, str] = {}
    names = []
    for label in labels:
        if label in seen:
            raise EpigrafError(f"models lists {label!r} twice; name each model once")
        base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(label).rstrip("/\\").replace("\\", "/").split("/")[-1]) or "model"
        name, n = base, 2
        while name in seen.values():
            name, n = f"{base}-{n}", n + 1
        seen[label] = name
        names.append(name)
    return names


def compare_script(volumes: Sequence[tuple[str, float]], columns: int, movie: str | None = "compare.mp4") -> str:
    """ChimeraX commands: open each (relative MRC path, level) as model #1.. , tile, full lighting, turntable."""
    specs = [f"#{i + 1}" for i in range(len(volumes))]
    lines = [
        "# ChimeraX command script written by epigraf-tools (epigraf compare-geometry). Run: chimerax compare.cxc",
        "# Rows: seeds; columns: models, in the order of --models. Each surface is at its model's level.",
    ]
    for (path, level), spec in zip(volumes, specs, strict=True):
        lines += chimerax_model_lines(path, level, spec)
    lines += [f"tile {specs[0]}-{len(specs)} columns {columns}", "lighting full", "view"]
    script = "\n".join(lines) + "\n"
    return script + (turntable_commands(specs, movie) if movie is not None else "")


def compare_geometry(
    models: Sequence[tuple[str, GeneratorSource]],
    seeds: Sequence[int],
    out: str | Path,
    *,
    truncation: Truncation = Truncation(PAPER_TRUNCATION),
    class_index: int | str | None = None,
    resolution: int = PAPER_RESOLUTION,
    mesh: MeshOptions = MeshOptions(),
    video_resolution: int = 256,
    frames: int = 120,
    fps: float = 30.0,
    shading: GeometryShading | None = None,
    hooks: ExportHooks | None = None,
    method: str = "auto",
) -> CompareReport:
    """Write the comparison of ``models`` ((label, generator or loader) pairs) for ``seeds`` into ``out``.

    ``resolution``: volume grid points per axis (the paper: 512); meshes and the cxc use each volume's
    suggested level (the model's recommended level, isodata when that is outside its values). The
    offline turntables render those same MRC volumes at ``video_resolution`` pixels per model over an
    orbit of ``frames`` frames at each model's own default camera. Returns a ``CompareReport``.
    """
    from .video import VideoOptions, check_frames, write_mp4

    hooks = hooks or ExportHooks()
    names = folder_names([label for label, _ in models])
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise EpigrafError("seeds is empty: give at least one seed")
    check_frames(frames)
    options = VideoOptions(fps=fps).validate()
    shading = (shading or GeometryShading()).validate()
    grid = GridOptions(resolution=resolution, method=method).validate()
    mesh = mesh.validate()
    out = output_folder(out)

    per_model: list[dict[str, Any]] = []
    for (label, source), name in zip(models, names, strict=True):
        G = source() if callable(source) and not hasattr(source, "config") else source
        folder = out / name
        volumes = export_volumes(
            G, seeds, folder, truncation=truncation, class_index=class_index, grid=grid, model=label, hooks=hooks
        )
        meshes = [mesh_volume_file(v.path, folder, options=mesh, G=G, hooks=hooks) for v in volumes]
        per_model.append(
            {
                "label": label,
                "folder": name,
                "config": G.config,
                "volumes": [str(v.path.relative_to(out)) for v in volumes],
                "levels": [float(v.suggested_level) for v in volumes],
                "level_sources": [v.suggested_level_source for v in volumes],
                "meshes": [[str((folder / f).relative_to(out)) for f in m.files] for m in meshes],
            }
        )
        del G

    ordered = [(m["volumes"][i], m["levels"][i]) for i in range(len(seeds)) for m in per_model]
    script = write_text_atomic(out / "compare.cxc", compare_script(ordered, columns=len(per_model)))

    videos = []
    with hooks.progress("Turntables") as update:
        total = len(seeds) * len(per_model) * frames
        done = 0
        for i, seed in enumerate(seeds):
            columns = []
            for m in per_model:
                vol = read_mrc(out / m["volumes"][i])
                surface = IsoSurface(vol.data, vol.voxel_size, vol.origin, m["levels"][i])
                del vol
                cameras, _ = get_trajectory("orbit", frames, base=Camera.default(m["config"]))
                rendered = []
                for frame in geometry_frames([surface], cameras, video_resolution, shading, [model_slab(m["config"])]):
                    rendered.append(frame)
                    done += 1
                    update(done, total)
                columns.append(np.stack(rendered))
                del surface
            stem = f"turntable_seed{seed:04d}"
            meta = {
                "seed": seed,
                "models": [m["label"] for m in per_model],
                "levels": [m["levels"][i] for m in per_model],
                "frames": frames,
                "fps": options.fps,
                "resolution_per_model": video_resolution,
                "layout": "models side by side, in the order given",
                "trajectory": "orbit around each model's default camera",
            }
            frame_iter = (make_grid([c[f] for c in columns], len(columns)) for f in range(frames))
            videos.append(write_mp4(out / f"{stem}.mp4", frame_iter, options, json.dumps(meta)))
            write_text_atomic(out / f"{stem}.json", json.dumps(meta, indent=2) + "\n")

    public = [{k: v for k, v in m.items() if k != "config"} for m in per_model]
    summary = {
        "format": "epigraf-tools geometry comparison v1",
        "seeds": seeds,
        "truncation_psi": truncation.psi,
        "truncation_cutoff": truncation.cutoff,
        "resolution": resolution,
        "models": public,
        "chimerax_script": script.name,
        "chimerax_movie": "compare.mp4 (written by ChimeraX when the script runs)",
        "videos": [v.name for v in videos],
    }
    summary_path = write_text_atomic(out / "compare.json", json.dumps(summary, indent=2) + "\n")
    return CompareReport(out, script, videos, summary_path, public)


__all__ = ["CompareReport", "compare_geometry", "compare_script", "folder_names"]

"""Meshes and density volumes for seeds, and meshes of volume files: the export-mesh/export-volume pipelines.

``export_meshes``, ``export_volumes`` and ``mesh_volume_file`` own the whole job (seed loop, latents,
density extraction, mesh building, files and sidecars), so the CLI and a Python caller get the same
files. What a caller wants to see of the work comes through ``ExportHooks`` (progress bars, stage
names, one call per finished file, notes, the one-off kernel build); without hooks nothing is shown.

Files per seed (NNNN = the seed, zero-padded): meshes ``seedNNNN.<fmt>`` + ``seedNNNN.mesh.json``;
volumes ``seedNNNN.mrc`` + ``seedNNNN.json`` + ``seedNNNN.cxc``. A volume file's mesh is named after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import write_text_atomic
from .eg3d_model import as_toolkit_model, is_eg3d
from .errors import EpigrafError
from .isolevel import default_level
from .latents import Truncation, class_name, resolve_class, ws_from_seeds
from .mesh import (
    LevelChoice,
    MeshReport,
    check_level,
    export_mesh,
    finish_mesh,
    padded_volume,
    parse_formats,
    surface_mesh,
    vertex_colors,
)
from .mesh_texture import TEXTURE_FORMATS, bake_texture, check_texture_size, require_xatlas
from .models import Generator
from .mrc import VolumeReport, export_volume, read_mrc
from .volume import METHODS, VALUE_TYPES, VolumeGrid, check_eg3d_method, extract_density, make_volume_grid

Progress = Callable[[int, int], None]  # (done, total)
Stage = Callable[[str], None]  # the name of the stage that starts now
MESH_UNITS = "world (the model's coordinates; y up)"


@dataclass(frozen=True)
class GridOptions:
    """Where the density is sampled: ``resolution`` points per axis over a box (see ``volume.make_volume_grid``).

    ``box`` None is the model's whole tri-plane cube; ``value`` 'raw' or 'sigma'; ``method`` the
    extraction path ('auto', 'kernel', 'separable', 'naive'); ``force`` allows resolutions above 2048.
    """

    resolution: int | Sequence[int] = 256
    box: float | Sequence[float] | None = None
    center: Sequence[float] | None = None
    value: str = "raw"
    method: str = "auto"
    force: bool = False

    def validate(self) -> GridOptions:
        """Check everything that does not need the model (its cube_scale only sets the default box)."""
        if self.value not in VALUE_TYPES:
            raise EpigrafError(f"value must be one of {', '.join(VALUE_TYPES)}, got {self.value!r}")
        if self.method not in METHODS:
            raise EpigrafError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.grid(1.0)
        return self

    def grid(self, cube_scale: float) -> VolumeGrid:
        return make_volume_grid(cube_scale, self.resolution, self.box, self.center, force=self.force)


@dataclass(frozen=True)
class MeshOptions:
    """How volumes become meshes: iso level (None = auto), formats, clean-up and colours.

    ``colors`` None colours the vertices when a model is at hand; True insists (an error without one).
    ``texture`` N also bakes the colours into an N x N texture for the GLB/OBJ files (needs a model,
    the optional ``xatlas`` package, and glb or obj among the formats).
    """

    level: float | None = None
    formats: Sequence[str] = ("ply",)
    keep_largest: bool = False
    max_faces: int | None = None
    smooth: int = 0
    colors: bool | None = None
    texture: int | None = None

    def validate(self) -> MeshOptions:
        """A checked copy (formats parsed to a list); raises EpigrafError naming the field."""
        level = self.level
        if level is not None and (isinstance(level, bool) or not math.isfinite(level)):
            raise EpigrafError(f"level must be a finite number or None (auto), got {level!r}")
        if self.max_faces is not None and self.max_faces < 4:
            raise EpigrafError(f"max_faces must be at least 4, got {self.max_faces}")
        if self.smooth < 0:
            raise EpigrafError(f"smooth must be >= 0 iterations, got {self.smooth}")
        formats = parse_formats(self.formats)
        if self.texture is not None:
            check_texture_size(self.texture)
            if self.colors is False:
                raise EpigrafError("a texture is made of the field's colours: drop --no-colors or --texture")
            if not set(formats) & set(TEXTURE_FORMATS):
                raise EpigrafError(f"a texture needs a format that carries one ({' or '.join(TEXTURE_FORMATS)})")
            require_xatlas()
        return dataclasses.replace(self, formats=formats)

    def build(
        self,
        volume: np.ndarray,
        voxel_size: Sequence[float],
        origin: Sequence[float],
        model_default: float | None,
        color_field: tuple[Generator, torch.Tensor] | None,
        stage: Stage | None = None,
    ) -> tuple[Any, MeshReport]:
        """``build_mesh`` with these options: (trimesh.Trimesh, MeshReport without files or provenance)."""
        mesh, choice = self.surface(volume, voxel_size, origin, model_default, stage)
        return finish_mesh(mesh, choice, color_field, stage)

    def surface(
        self,
        volume: np.ndarray,
        voxel_size: Sequence[float],
        origin: Sequence[float],
        model_default: float | None,
        stage: Stage | None = None,
    ) -> tuple[Any, LevelChoice]:
        """``surface_mesh`` with these options: the steps of ``build`` that need the volume."""
        return surface_mesh(
            volume,
            voxel_size,
            origin,
            level=self.level,
            model_default=model_default,
            keep_largest=self.keep_largest,
            smooth_iterations=self.smooth,
            max_faces=self.max_faces,
            stage=stage,
        )

    def stages(self, colors: bool) -> list[str]:
        """The names ``build_mesh`` reports, in order, for these options."""
        names = ["marching cubes"]
        names += ["largest component"] if self.keep_largest else []
        names += ["smoothing"] if self.smooth > 0 else []
        names += ["decimation"] if self.max_faces is not None else []
        names += ["colours"] if colors else []
        names += ["texture"] if colors and self.texture is not None else []
        return names

    def textured(self, mesh: Any, color_field: tuple[Generator, torch.Tensor] | None, stage: Stage | None = None):
        """The mesh unwrapped with its colours baked into a texture, or None when no texture is asked for."""
        if self.texture is None or color_field is None:
            return None
        if stage is not None:
            stage("texture")
        G, planes = color_field
        return bake_texture(mesh.vertices, mesh.faces, self.texture, lambda points: vertex_colors(G, planes, points))


def _no_progress(_description: str) -> AbstractContextManager[Progress]:
    return contextlib.nullcontext(lambda _done, _total: None)


def _no_stages(_description: str, _stages: list[str]) -> AbstractContextManager[Stage]:
    return contextlib.nullcontext(lambda _name: None)


@dataclass
class ExportHooks:
    """What the pipelines report while they work; every hook is optional (the CLI passes rich bars).

    ``progress(description)`` and ``stages(description, names)`` are context-manager factories that
    yield ``update(done, total)`` and ``stage(name)``; ``kernel_build(message)`` is entered while the
    fused kernel is built for the first time (a minute or two) and left when it is ready.
    """

    progress: Callable[[str], AbstractContextManager[Progress]] = _no_progress
    stages: Callable[[str, list[str]], AbstractContextManager[Stage]] = _no_stages
    on_report: Callable[[Any], None] | None = None  # each MeshReport / VolumeReport once its files exist
    on_note: Callable[[str], None] | None = None
    kernel_build: Callable[[str], AbstractContextManager[Any]] | None = None

    def report(self, report: Any) -> None:
        if self.on_report is not None:
            self.on_report(report)

    def note(self, message: str) -> None:
        if self.on_note is not None:
            self.on_note(message)


def prepare_kernel(method: str, device: torch.device | str, voxels: int, hooks: ExportHooks | None = None) -> None:
    """Build/load the fused kernel now when extraction will use it, so its build notice comes first.

    It follows ``method='auto'``'s rule (``kernels.auto_builds_kernel``): a cached build loads in
    milliseconds; a cold one starts only for grids big enough to repay it, or for ``method='kernel'``.
    """
    from .kernels import auto_builds_kernel, load_density_kernel

    if torch.device(device).type != "cpu" or method not in ("auto", "kernel"):
        return
    if method == "auto" and not auto_builds_kernel(voxels):
        return
    with contextlib.ExitStack() as stack:
        on_build = None
        if hooks is not None and hooks.kernel_build is not None:
            kernel_build = hooks.kernel_build

            def on_build(message: str) -> None:
                stack.enter_context(kernel_build(message))

        load_density_kernel(on_build=on_build)


def output_folder(out: str | Path) -> Path:
    """Create ``out`` (and parents) and check a file can be written there, before any work."""
    import os
    import tempfile

    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".epigraf-write-test-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise EpigrafError(f"cannot write to output folder {out}: {exc.strerror or exc}") from None
    return out


def seed_provenance(G: Generator, model: str | None, seed: int, truncation: Truncation, cls: int | None) -> dict:
    """Model, seed, truncation and class of one output: the head of every geometry sidecar."""
    return {
        "model": model if model is not None else G.config.name,
        "seed": seed,
        "truncation_psi": truncation.psi,
        "truncation_cutoff": truncation.cutoff,
        "class_index": cls,
        "class_name": class_name(G.config, cls),
    }


@torch.no_grad()
def seed_planes(
    G: Generator, seed: int, truncation: Truncation, class_index: int | None
) -> tuple[torch.Tensor, int | None]:
    """Tri-planes [1, 3, C, R, R] of one seed (constant noise, as every export) and its class."""
    ws, classes = ws_from_seeds(G, [seed], truncation, class_index)
    return G.planes(ws, noise_mode="const"), classes[0]


def _prepare(G: Generator, truncation: Truncation, class_index: int | str | None, grid: GridOptions):
    """Checks before any work; an EG3D model's default box is its box_warp cube (config.cube_scale)."""
    truncation = truncation.validate(G.num_ws)
    if is_eg3d(G):
        check_eg3d_method(grid.method)
    cls = resolve_class(G.config, class_index)
    volume_grid = grid.validate().grid(G.config.cube_scale)
    return truncation, cls, volume_grid


def save_mesh(mesh: Any, report: MeshReport, stem: Path, formats: Sequence[str], textured: Any = None) -> MeshReport:
    """Write ``stem.<fmt>`` for each format and then ``stem.mesh.json`` (the sidecar never outlives its meshes).

    ``textured`` (a texture-baked copy of ``mesh``) is what the GLB and OBJ files get.
    """
    paths = export_mesh(mesh, stem, formats, textured)
    if textured is not None:
        report.texture = int(textured.visual.material.image.size[0])
    report.files = [p.name for p in paths]
    try:
        write_text_atomic(stem.with_name(stem.name + ".mesh.json"), json.dumps(report.to_dict(), indent=2) + "\n")
    except BaseException:
        for p in paths:
            p.unlink(missing_ok=True)
        raise
    return report


def export_meshes(
    G: Generator,
    seeds: Sequence[int],
    out: str | Path,
    *,
    truncation: Truncation = Truncation(),
    class_index: int | str | None = None,
    grid: GridOptions = GridOptions(),
    options: MeshOptions = MeshOptions(),
    model: str | None = None,
    hooks: ExportHooks | None = None,
) -> list[MeshReport]:
    """Sample each seed's density on ``grid`` and write its mesh files and ``seedNNNN.mesh.json`` into ``out``.

    ``model`` is the name recorded in the sidecars (default: the model's config name). Colours are on
    unless ``options.colors`` is False. Returns one MeshReport per seed, in order.
    """
    G = as_toolkit_model(G)
    hooks = hooks or ExportHooks()
    options = options.validate()
    truncation, cls, volume_grid = _prepare(G, truncation, class_index, grid)
    out = output_folder(out)
    prepare_kernel(grid.method, G.device, volume_grid.num_voxels, hooks)
    use_colors = options.colors is not False
    reports = []
    for seed in seeds:
        planes, seed_cls = seed_planes(G, seed, truncation, cls)
        with hooks.progress(f"seed{seed:04d} volume") as update:
            vol = extract_density(  # inside a margin: marching cubes closes the surface without a copy
                G,
                planes,
                grid=volume_grid,
                value=grid.value,
                method=grid.method,
                progress=update,
                out=padded_volume(volume_grid.resolution),
            )
        with hooks.stages(f"seed{seed:04d} mesh", options.stages(use_colors)) as stage:
            color_field = (G, planes) if use_colors else None
            model_default = default_level(G.config, grid.value)
            mesh, choice = options.surface(vol, volume_grid.voxel_size, volume_grid.origin, model_default, stage)
            del vol  # before the colours and the report, whose arrays can then reuse its memory
            mesh, report = finish_mesh(mesh, choice, color_field, stage)
            textured = options.textured(mesh, color_field, stage)
        report.provenance = {
            **seed_provenance(G, model, seed, truncation, seed_cls),
            "value": grid.value,
            "grid": volume_grid.to_dict(),
            "units": MESH_UNITS,
        }
        reports.append(save_mesh(mesh, report, out / f"seed{seed:04d}", options.formats, textured))
        hooks.report(report)
    return reports


GeneratorSource = Generator | Callable[[], Generator]


def mesh_volume_file(
    path: str | Path,
    out: str | Path,
    *,
    options: MeshOptions = MeshOptions(),
    G: GeneratorSource | None = None,
    hooks: ExportHooks | None = None,
) -> MeshReport:
    """Mesh an MRC volume (e.g. from ``export_volumes``) into ``out/<name>.<fmt>`` + ``<name>.mesh.json``.

    Colours need the generator the volume came from and the seed in its sidecar; ``G`` may be a
    zero-argument function that loads it, called only when the sidecar has a seed. The sidecar's
    model default level is used for ``level=None``; an explicit level outside the data fails first.
    """
    hooks = hooks or ExportHooks()
    options = options.validate()
    path = Path(path)
    if (options.colors or options.texture is not None) and G is None:
        raise EpigrafError("colours for a volume need the generator it came from (G)")
    vol = read_mrc(path)
    if options.level is not None:  # a bad level is a bad argument: fail before any work or output
        check_level(options.level, float(vol.data.min()), float(vol.data.max()))
    out = output_folder(out)
    side = vol.sidecar or {}
    color_field = None
    if G is not None and options.colors is not False:
        if "seed" not in side:
            if options.colors or options.texture is not None:
                raise EpigrafError(f"{path} has no sidecar with its seed ({path.with_suffix('.json').name})")
            hooks.note(f"note: no sidecar with a seed beside {path}; writing the mesh without colours")
        else:
            model = as_toolkit_model(G if hasattr(G, "planes") else G())  # a generator, or a loader
            trunc = Truncation(float(side.get("truncation_psi", 1.0)), side.get("truncation_cutoff"))
            planes, _ = seed_planes(model, int(side["seed"]), trunc.validate(model.num_ws), side.get("class_index"))
            color_field = (model, planes)
    with hooks.stages(path.stem, options.stages(color_field is not None)) as stage:
        mesh, report = options.build(
            vol.data, vol.voxel_size, vol.origin, side.get("default_level"), color_field, stage
        )
        textured = options.textured(mesh, color_field, stage)
    report.provenance = {"volume": str(path), "units": "world (from the MRC header)"}
    report.provenance.update(
        {k: side[k] for k in ("model", "seed", "truncation_psi", "class_index", "value") if k in side}
    )
    save_mesh(mesh, report, out / path.stem, options.formats, textured)
    hooks.report(report)
    return report


def export_volumes(
    G: Generator,
    seeds: Sequence[int],
    out: str | Path,
    *,
    truncation: Truncation = Truncation(),
    class_index: int | str | None = None,
    grid: GridOptions = GridOptions(resolution=512),
    model: str | None = None,
    hooks: ExportHooks | None = None,
    chimerax_movie: bool = False,
) -> list[VolumeReport]:
    """Write ``seedNNNN.mrc`` (streamed to disk), ``seedNNNN.json`` and ``seedNNNN.cxc`` per seed into ``out``.

    ``chimerax_movie``: each .cxc also records a turntable ``seedNNNN.mp4`` when run in ChimeraX.

    One progress bar ('Volumes') covers every seed's voxels. Returns one VolumeReport per seed.
    """
    G = as_toolkit_model(G)
    hooks = hooks or ExportHooks()
    truncation, cls, volume_grid = _prepare(G, truncation, class_index, grid)
    out = output_folder(out)
    prepare_kernel(grid.method, G.device, volume_grid.num_voxels, hooks)
    total = volume_grid.num_voxels * len(seeds)
    reports = []
    with hooks.progress("Volumes") as update:
        for n, seed in enumerate(seeds):
            planes, seed_cls = seed_planes(G, seed, truncation, cls)
            metadata = {**seed_provenance(G, model, seed, truncation, seed_cls), "method": grid.method}
            done = n * volume_grid.num_voxels
            report = export_volume(
                G,
                planes,
                out / f"seed{seed:04d}.mrc",
                volume_grid,
                value=grid.value,
                metadata=metadata,
                method=grid.method,
                progress=lambda d, _t, done=done: update(done + d, total),
                chimerax_movie=chimerax_movie,
            )
            reports.append(report)
            hooks.report(report)
    return reports


__all__ = [
    "ExportHooks",
    "GridOptions",
    "MeshOptions",
    "MeshReport",
    "VolumeReport",
    "export_meshes",
    "export_volumes",
    "mesh_volume_file",
    "output_folder",
    "prepare_kernel",
    "save_mesh",
    "seed_planes",
    "seed_provenance",
]

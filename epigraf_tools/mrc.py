"""MRC volumes that ChimeraX shows the right way round, with a JSON sidecar and a ChimeraX script.

Axis order: MRC stores sections (z) slowest and columns (x) fastest; mrcfile exposes the data as
``data[z, y, x]`` and ChimeraX places ``data[k, j, i]`` at ``origin + (i * dx, j * dy, k * dz)``.
We write ``data[k, j, i] = V(x_i, y_j, z_k)``, so ChimeraX's frame is the model's world frame
(right-handed, y up, FFHQ faces looking toward +x). The official script wrote its [x, y, z] array
as if it were [z, y, x], which swaps x and z: a mirror image.

Header: mode 2 (float32), voxel size (cell size / grid size) and origin (the world position of
grid point (0, 0, 0)) in the model's world units, MRC2014, passes ``mrcfile.validate``. Volumes are
streamed slab by slab under a temporary name (the header through ``mrcfile.new_mmap``, the data
with O_DIRECT writes beside the computation, ``direct_write``) and renamed when complete.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path, write_text_atomic
from .direct_write import DirectRegionWriter
from .errors import EpigrafError
from .isolevel import DensityStats, choose_level, default_level
from .models import Generator
from .volume import VolumeGrid, extract_density

Triple = tuple[float, float, float]


@dataclass
class MrcVolume:
    """A volume read from MRC: ``data[i, j, k]`` is the value at ``origin + (i, j, k) * voxel_size``."""

    data: np.ndarray  # [Rx, Ry, Rz] float32 (a view of the file's [z, y, x] array)
    voxel_size: Triple
    origin: Triple
    path: Path | None = None
    sidecar: dict[str, Any] | None = None

    @property
    def resolution(self) -> tuple[int, int, int]:
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]


@dataclass
class VolumeReport:
    """One written volume: its files and what its sidecar says (``to_dict()`` is that sidecar)."""

    path: Path  # the .mrc file
    files: list[Path]  # .mrc, then the .json sidecar and the .cxc script when written
    sidecar: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.sidecar)

    @property
    def stats(self) -> dict[str, Any]:
        """min, max, mean, std and percentiles of the values."""
        return self.sidecar["stats"]

    @property
    def suggested_level(self) -> float:
        return self.sidecar["suggested_level"]

    @property
    def suggested_level_source(self) -> str:
        return self.sidecar["suggested_level_source"]


# --------------------------------------------------------------------------- writing
def _set_header(mrc: Any, voxel_size: Sequence[float], origin: Sequence[float], label: str | None) -> None:
    mrc.voxel_size = tuple(float(v) for v in voxel_size)
    mrc.header.origin.x, mrc.header.origin.y, mrc.header.origin.z = (float(v) for v in origin)
    mrc.header.nxstart = mrc.header.nystart = mrc.header.nzstart = 0
    mrc.header.mapc, mrc.header.mapr, mrc.header.maps = 1, 2, 3
    if label:
        mrc.add_label(label[:80])


def _set_stats(mrc: Any, stats: DensityStats) -> None:
    mrc.header.dmin = stats.min
    mrc.header.dmax = stats.max
    mrc.header.dmean = stats.mean
    mrc.header.rms = stats.std


def write_mrc(
    path: str | os.PathLike[str],
    volume: np.ndarray,
    voxel_size: float | Sequence[float],
    origin: Sequence[float] = (0.0, 0.0, 0.0),
    label: str | None = None,
) -> Path:
    """Write an in-memory volume V [Rx, Ry, Rz] (V[i, j, k] at origin + (i, j, k) * voxel_size) atomically."""
    import mrcfile

    vol = np.asarray(volume, dtype=np.float32)
    if vol.ndim != 3:
        raise ValueError(f"expected a 3-D volume, got shape {vol.shape}")
    vs = (float(voxel_size),) * 3 if np.isscalar(voxel_size) else tuple(float(v) for v in voxel_size)
    path = Path(path)
    with atomic_path(path) as tmp:
        with mrcfile.new(tmp, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(vol.transpose(2, 1, 0)))
            _set_header(mrc, vs, origin, label)
            mrc.update_header_stats()
    return path


def export_volume(
    G: Generator,
    ws_or_planes: torch.Tensor,
    path: str | os.PathLike[str],
    grid: VolumeGrid,
    value: str = "raw",
    metadata: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    method: str = "auto",
    sidecar: bool = True,
    chimerax: bool = True,
    chimerax_movie: bool = False,
) -> VolumeReport:
    """Extract a density volume straight into a memory-mapped MRC file, plus ``.json`` and ``.cxc``.

    ``metadata`` (model, seed, psi, class ...) goes into the sidecar. Peak memory: the volume's pages
    (the OS may evict them once written) plus ``extract_density``'s working set. The volume appears
    complete or not at all, and before its sidecars. Returns a ``VolumeReport`` (files and sidecar).
    ``chimerax_movie``: the .cxc also records a turntable movie ``<name>.mp4`` (``turntable_commands``).
    """
    import mrcfile

    path = Path(path)
    stats = DensityStats(grid.num_voxels)
    with atomic_path(path) as tmp:
        mrc = mrcfile.new_mmap(tmp, shape=grid.shape_zyx, mrc_mode=2, overwrite=True)
        try:
            _set_header(mrc, grid.voxel_size, grid.origin, "epigraf-tools density volume")
            options = {"grid": grid, "value": value, "progress": progress, "method": method}
            # z-slabs in order (both families): written from one reused buffer (see _append_slabs)
            data_offset = int(mrc.header.nbytes + mrc.extended_header.nbytes)
            with _append_slabs(tmp, data_offset, grid.num_voxels * 4) as write:
                extract_density(G, ws_or_planes, sink=lambda _k0, s: (stats.update(s), write(s)), **options)
            _set_stats(mrc, stats)
            mrc.flush()
        finally:
            mrc.close()
        info = volume_info(G, grid, value, stats, metadata)
    # The sidecars describe the volume, so they follow it: a sidecar never exists without its volume.
    # Should one fail, both go (an older pair would describe another volume); the volume stays valid alone.
    files = [path]
    try:
        if sidecar:
            files.append(write_text_atomic(sidecar_path(path), json.dumps(info, indent=2) + "\n"))
        if chimerax:
            files.append(
                write_text_atomic(
                    path.with_suffix(".cxc"),
                    chimerax_script(
                        path.name, info["suggested_level"], path.with_suffix(".mp4").name if chimerax_movie else None
                    ),
                )
            )
    except BaseException:
        for extra in (sidecar_path(path), path.with_suffix(".cxc")):
            extra.unlink(missing_ok=True)
        raise
    return VolumeReport(path, files, info)


@contextlib.contextmanager
def _append_slabs(path: Path, offset: int, nbytes: int) -> Iterator[Callable[[np.ndarray], None]]:
    """A writer of consecutive slabs into ``path``: the ``nbytes`` data block of a new MRC from byte ``offset``.

    Not through the memory map: its 131,072 page faults per 512^3 volume cost 0.5-1.2 s of system
    time on 2 cores. The slabs go out with O_DIRECT from a helper thread while the next one is
    computed (``direct_write``; through the page cache where that is unavailable). The mapped header
    shares only the first page with the data, and that page is written through the page cache.
    """
    with DirectRegionWriter(path, offset, nbytes) as writer:
        yield writer.write
        writer.finish()


def volume_info(
    G: Generator, grid: VolumeGrid, value: str, stats: DensityStats, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    """The sidecar: provenance, grid, value type, statistics and iso levels."""
    model_default = default_level(G.config, value)
    level, source = choose_level(model_default, stats)
    return {
        "format": "epigraf-tools volume sidecar v1",
        **(metadata or {}),
        "value": value,
        "value_meaning": (
            "raw density (MLP output before activation, as the official extract_geometry.py)"
            if value == "raw"
            else f"sigma = {G.config.clamp_mode}(raw + density_shift), the renderer's density"
        ),
        "density_shift": G.config.density_shift,
        "clamp_mode": G.config.clamp_mode,
        "cube_scale": G.config.cube_scale,
        "grid": grid.to_dict(),
        "axis_order": "MRC data[z, y, x], x fastest; ChimeraX shows the model's world frame (y up)",
        "stats": stats.summary(),
        "default_level": model_default,
        "suggested_level": level,
        "suggested_level_source": source,
    }


# --------------------------------------------------------------------------- sidecar and ChimeraX
def sidecar_path(mrc_path: str | os.PathLike[str]) -> Path:
    return Path(mrc_path).with_suffix(".json")


def read_sidecar(mrc_path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The JSON written beside an MRC file by ``export_volume``, or None if absent/unreadable."""
    path = sidecar_path(mrc_path)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def chimerax_script(mrc_name: str, level: float, movie: str | None = None) -> str:
    """A .cxc that opens the volume as a surface at ``level`` with full lighting.

    ChimeraX runs a .cxc from its own folder, so the MRC is named relative to it. ``movie``: a file
    name (beside the script) for a turntable recording, as the paper's geometry videos were made.
    """
    script = (
        "# ChimeraX command script written by epigraf-tools. Run: chimerax <this file>\n"
        "# (ChimeraX executes it from this folder, so the volume is found beside it.)\n"
        + "\n".join(chimerax_model_lines(mrc_name, level))
        + "\nlighting full\n"
        "view\n"
    )
    return script + (turntable_commands(["#1"], movie) if movie is not None else "")


def chimerax_model_lines(mrc_name: str, level: float, spec: str | None = None) -> list[str]:
    """ChimeraX commands that open one MRC and show it as a surface at ``level``, step 1 (model ``spec``)."""
    target = f"{spec} " if spec else ""
    return [f'open "{mrc_name}" format mrc', f"volume {target}style surface level {level:.6g} step 1"]


TURNTABLE_FRAMES = 180  # 2 degrees per frame: one full turn
TURNTABLE_FPS = 30


def turntable_commands(models: list[str], movie: str, frames: int = TURNTABLE_FRAMES, fps: int = TURNTABLE_FPS) -> str:
    """ChimeraX commands that turn each model about its own vertical axis once and encode the movie.

    ``models``: ChimeraX model specs ('#1', '#2' ...). First each model is turned -90 degrees about
    the screen's y axis so that the model's +x (where FFHQ faces look) faces the viewer, who looks
    down -z; then ``movie record``, one ``turn y`` per model spinning it about its own centre (they
    run together), ``wait`` for the frames, and ``movie encode`` into ``movie`` (relative to the
    script's folder). Syntax from the ChimeraX docs of ``turn`` and ``movie`` (docs/geometry.md).
    """
    step = 360.0 / frames
    lines = ["# turntable movie: one full turn about the vertical axis, then encoded"]
    lines += [f"turn y -90 models {m} center {m}" for m in models]
    lines += ["view", "movie record"]
    lines += [f"turn y {step:g} {frames} models {m} center {m}" for m in models]
    lines += [f"wait {frames}", f'movie encode "{movie}" framerate {fps}']
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- reading
def read_mrc(path: str | os.PathLike[str]) -> MrcVolume:
    """Read an MRC volume as ChimeraX does (axis map, cell size / grid size, origin or n*start).

    Raises EpigrafError for a missing or corrupt file.
    """
    import mrcfile

    path = Path(path)
    if not path.is_file():
        raise EpigrafError(f"volume file {path} does not exist")
    try:
        with mrcfile.mmap(path, mode="r", permissive=False) as mrc:
            data = np.array(mrc.data)  # one writable in-memory copy (the file stays untouched)
            header = mrc.header
            voxel = mrc.voxel_size
            step = [float(voxel.x), float(voxel.y), float(voxel.z)]
            origin = [float(header.origin.x), float(header.origin.y), float(header.origin.z)]
            start = [int(header.nxstart), int(header.nystart), int(header.nzstart)]
            axis_map = (int(header.mapc), int(header.mapr), int(header.maps))
    except (ValueError, OSError, EOFError) as exc:
        raise EpigrafError(f"{path} is not a readable MRC volume: {str(exc).splitlines()[0]}") from None
    if data is None or data.ndim != 3:
        raise EpigrafError(f"{path} holds no 3-D volume (data shape {getattr(data, 'shape', None)})")
    if not np.issubdtype(data.dtype, np.number) or np.iscomplexobj(data):
        raise EpigrafError(f"{path} holds {data.dtype} data; expected real numbers")
    step = [s if s > 0 and math.isfinite(s) else 1.0 for s in step]
    # File axes are (columns, rows, sections) = data[s, r, c]; mapc/mapr/maps say which spatial
    # axis (1 = x, 2 = y, 3 = z) each file axis is.
    if sorted(axis_map) != [1, 2, 3]:
        axis_map = (1, 2, 3)
    order = [axis_map.index(a) for a in (1, 2, 3)]  # spatial axis -> file axis among (c, r, s)
    xyz = np.asarray(data).transpose(2, 1, 0).transpose(order)
    if not all(math.isfinite(o) for o in origin) or origin == [0.0, 0.0, 0.0]:
        # Older files keep the origin in n*start (grid units, in file-axis order), as ChimeraX reads it.
        origin = [start[order[a]] * step[a] for a in range(3)]
    vol = xyz.astype(np.float32, copy=False)
    return MrcVolume(vol, tuple(step), tuple(origin), path, read_sidecar(path))  # type: ignore[arg-type]

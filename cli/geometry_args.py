"""Options and helpers shared by the geometry commands (export-volume, export-mesh)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from epigraf_tools.errors import EpigrafError
from epigraf_tools.geometry_export import ExportHooks, GridOptions
from epigraf_tools.volume import MAX_RESOLUTION

from .common import FLAGS, echo, flag_names
from .render_args import progress_bar

BoxOption = typer.Option(
    None,
    "--box",
    help="Side length of the sampled box in world units: one number or 'x,y,z' (default: the model's whole "
    "tri-plane cube, 2 x cube_scale; the official script used 0.3).",
)
CenterOption = typer.Option(None, "--center", help="Box centre 'x,y,z' in world units (default 0,0,0).")
ValueOption = typer.Option(
    "raw",
    "--value",
    help="raw: density before the activation, as the official script (default); sigma: softplus(raw + "
    "density_shift), the renderer's density.",
)
ForceOption = typer.Option(False, "--force", help=f"Allow resolutions above {MAX_RESOLUTION}.")
MethodOption = typer.Option(
    "auto",
    "--method",
    help="Extraction path: auto (fused C++ CPU kernel when it builds, else separable), kernel, separable, "
    "naive (the official point-by-point procedure; slow, for checks).",
)


def parse_numbers(text: str | None, name: str, allowed: tuple[int, ...]) -> list[float] | None:
    """'0.1,0.2,0.3' -> [0.1, 0.2, 0.3]; the count must be in ``allowed``."""
    if text is None:
        return None
    parts = [p for p in str(text).replace(" ", ",").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise EpigrafError(f"{name} expects numbers like '0.1,0,-0.05', got {text!r}") from None
    if len(values) not in allowed:
        raise EpigrafError(f"{name} needs {' or '.join(map(str, allowed))} numbers, got {len(values)} in {text!r}")
    return values


def check_grid_options(
    resolution: int,
    box: str | None,
    center: str | None,
    value: str,
    method: str,
    force: bool,
    in_memory: bool = False,
    on_disk: Path | None = None,
) -> GridOptions:
    """Validate every grid option before a model is loaded; returns them parsed.

    ``in_memory``: the whole volume will be held in RAM (export-mesh), so even with --force a grid
    larger than the machine's memory is refused now rather than by a MemoryError after the model loads.
    ``on_disk``: the output folder a volume file will be streamed into (export-volume); a grid larger
    than its free space is refused likewise.
    """
    box_vals = parse_numbers(box, "--box", (1, 3))
    center_vals = parse_numbers(center, "--center", (3,))
    box_arg = box_vals[0] if box_vals is not None and len(box_vals) == 1 else box_vals
    options = GridOptions(resolution, box_arg, center_vals, value, method, force)
    with flag_names(FLAGS):  # the library names value / method / force=True; here they are flags
        options = options.validate()
        grid = options.grid(1.0)  # the real cube_scale comes with the model
    nbytes = 4 * grid.resolution[0] * grid.resolution[1] * grid.resolution[2]
    if in_memory:
        check_fits_in_memory(nbytes, "--resolution")
    if on_disk is not None:
        check_fits_on_disk(nbytes, on_disk, "--resolution")
    return options


def physical_memory_bytes() -> int | None:
    """Total RAM, or None where the platform does not say (then no memory check is made)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def check_fits_in_memory(nbytes: int, option: str) -> None:
    """Refuse an array of ``nbytes`` that cannot fit in this machine's RAM (named after ``option``)."""
    total = physical_memory_bytes()
    if total is not None and nbytes > total:
        raise EpigrafError(
            f"{option} asks for a {nbytes / 2**30:,.1f} GiB volume in memory but this machine has "
            f"{total / 2**30:.1f} GiB; use a lower {option}"
        )


def check_fits_on_disk(nbytes: int, folder: Path, option: str) -> None:
    """Refuse a file of ``nbytes`` larger than the free space where ``folder`` is (or will be created)."""
    import shutil

    existing = Path(folder).absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError:
        return  # cannot tell: prepare_writable_out reports an unusable folder
    if nbytes > free:
        raise EpigrafError(
            f"{option} asks for a {nbytes / 2**30:,.1f} GiB volume file but {existing} has "
            f"{free / 2**30:.1f} GiB free; use a lower {option} or another --out"
        )


def prepare_writable_out(out: Path) -> Path:
    """Create ``out`` and prove it is writable (so no work is done for nothing)."""
    from epigraf_tools.geometry_export import output_folder

    with flag_names({"output folder": "--out"}):
        return output_folder(out)


@contextlib.contextmanager
def kernel_notice(message: str) -> Iterator[None]:
    """Say once on stderr that the one-off kernel build starts, with a spinner until it is ready."""
    from rich.console import Console

    typer.echo(message, err=True)
    with Console(stderr=True).status("Building the fused CPU density kernel"):
        yield


def geometry_hooks(quiet: bool, on_report: Callable[[Any], None] | None = None) -> ExportHooks:
    """The pipelines' hooks for a terminal: rich progress and stage bars on stderr, notes on stdout.

    A cached kernel loads silently; --quiet silences the build notice and every bar.
    """
    return ExportHooks(
        progress=lambda description: progress_bar(description, quiet),
        stages=lambda description, names: stage_bar(description, names, quiet),
        on_report=on_report,
        on_note=lambda message: echo(message, quiet),
        kernel_build=None if quiet else kernel_notice,
    )


@contextlib.contextmanager
def stage_bar(description: str, stages: list[str], quiet: bool) -> Iterator[Callable[[str], None]]:
    """A progress bar over named pipeline stages; yields ``stage(name)`` to advance it."""
    if quiet:
        yield lambda name: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=Console(stderr=True)
    ) as progress:
        task = progress.add_task(description, total=len(stages))
        seen: list[str] = []

        def stage(name: str) -> None:
            if seen:
                progress.advance(task)
            seen.append(name)
            progress.update(task, description=f"{description}: {name}")

        yield stage
        progress.update(task, completed=len(stages), description=f"{description}: done")


# --------------------------------------------------------------------------- lit iso-surface shading
ShadingOption = typer.Option(
    "color",
    "--shading",
    help="color: the model's rendered image (default); geometry: its density iso-surface, lit like ChimeraX's "
    "'lighting full' (see docs/geometry.md).",
)
IsoLevelOption = typer.Option(
    "auto",
    "--level",
    help="With --shading geometry: iso level on raw density, or 'auto' (the model's recommended level; "
    "isodata when that lies outside the volume's values).",
)
VolumeResolutionOption = typer.Option(
    256, "--volume-resolution", help="With --shading geometry: grid points per axis of the sampled density."
)


def check_shading(shading: str, level: str, volume_resolution: int):  # noqa: ANN201 - GeometryShading | None
    """Validate --shading/--level/--volume-resolution before a model loads; None for colour shading."""
    from epigraf_tools.geometry_views import SHADING, GeometryShading

    from .export_mesh import parse_level

    if shading not in SHADING:
        raise EpigrafError(f"--shading must be one of {', '.join(SHADING)}, got {shading!r}")
    try:
        level_value = parse_level(level)
    except ValueError as exc:
        raise EpigrafError(str(exc)) from None
    if shading == "color":
        if level_value is not None or volume_resolution != 256:
            raise EpigrafError("--level and --volume-resolution need --shading geometry")
        return None
    with flag_names({"resolution": "--volume-resolution", "level": "--level"}):
        return GeometryShading(volume_resolution=volume_resolution, level=level_value).validate()

"""Options and helpers shared by the rendering commands (sample, video, interpolate)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

from epigraf_tools.camera import Camera, camera_from_options, parse_look_at
from epigraf_tools.errors import EpigrafError
from epigraf_tools.latents import Truncation
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.seeds import parse_seeds

TruncationOption = typer.Option(
    1.0, "--truncation", help="Truncation psi in [0, 2]: 1 = off, 0.7 = the official scripts' setting."
)
CutoffOption = typer.Option(None, "--truncation-cutoff", help="Truncate only the first N ws (default: all).")
ClassOption = typer.Option(
    None, "--class", help="Class index or name (class-conditional models; default: chosen by the seed as officially)."
)
YawOption = typer.Option(None, "--yaw", help="Camera yaw (radians unless --degrees); 0 = frontal.")
PitchOption = typer.Option(None, "--pitch", help="Camera pitch from +y (radians unless --degrees); pi/2 = level.")
DegreesOption = typer.Option(False, "--degrees", help="Read --yaw and --pitch in degrees.")
FovOption = typer.Option(None, "--fov", help="Field of view in degrees (default: the model's).")
RadiusOption = typer.Option(None, "--radius", help="Camera distance from the look-at point (default: the model's).")
LookAtOption = typer.Option(None, "--look-at", help="Point the camera orbits and faces, 'x,y,z' (default 0,0,0).")
ResolutionOption = typer.Option(None, "--resolution", help="Render size in pixels (default: the model's).")
DeterministicOption = typer.Option(
    False, "--deterministic", help="No ray jitter and evenly spaced importance samples (default: seeded noise)."
)


def seeds_from_text(text: str) -> list[int]:
    """Parse --seeds (raises EpigrafError with the offending part)."""
    return parse_seeds(text)


def check_common(
    truncation: float,
    cutoff: int | None,
    resolution: int | None,
    batch_size: int,
) -> tuple[Truncation, RenderSettings]:
    """Validate what can be checked before a model is loaded."""
    trunc = Truncation(truncation, cutoff).validate()
    if isinstance(batch_size, bool) or batch_size < 1:
        raise EpigrafError(f"--batch-size must be a positive integer, got {batch_size}")
    settings = RenderSettings(resolution=resolution).validate()
    return trunc, settings


def check_camera_values(
    yaw: float | None,
    pitch: float | None,
    fov: float | None,
    radius: float | None,
    look_at: str | None,
    degrees: bool,
) -> None:
    """Range-check camera options before loading anything (the model supplies the defaults later)."""
    camera_from_options(None, yaw, pitch, radius, fov, parse_look_at(look_at), degrees)


def build_camera(
    config: GeneratorConfig,
    yaw: float | None,
    pitch: float | None,
    fov: float | None,
    radius: float | None,
    look_at: str | None,
    degrees: bool,
) -> Camera:
    return camera_from_options(config, yaw, pitch, radius, fov, parse_look_at(look_at), degrees)


def load_model(model: str | None, device: str, quiet: bool = False) -> tuple[Generator, str]:
    """Load through ``checkpoints.loading`` (the one way every command loads); ``quiet`` hides transfer bars."""
    from epigraf_tools.checkpoints.loading import load_generator
    from epigraf_tools.devices import resolve_device
    from epigraf_tools.distributed import context_from_env, device_for_rank

    dev = device_for_rank(resolve_device(device), context_from_env())
    G = load_generator(model, dev, progress=not quiet)
    return G, (str(model) if model is not None else "default")


def prepare_out(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EpigrafError(f"cannot create --out {out}: {exc.strerror or exc}") from None
    return out


@contextlib.contextmanager
def progress_bar(description: str, quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar with ETA on stderr; yields ``update(done, total)`` (a no-op when quiet)."""
    if quiet:
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update

"""Options and helpers shared by the rendering commands (sample, video, interpolate)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import typer

from epigraf_tools.camera import Camera, camera_from_options, parse_look_at
from epigraf_tools.errors import EpigrafError
from epigraf_tools.latents import Truncation
from epigraf_tools.models import Generator, GeneratorConfig
from epigraf_tools.rendering import RenderSettings
from epigraf_tools.seeds import parse_seeds
from epigraf_tools.video import VideoOptions

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
RawOption = typer.Option(
    False,
    "--raw",
    help="EG3D models: save the neural render instead of the super-resolved image (EpiGRAF images are always raw).",
)
LayerOption = typer.Option(
    "all",
    "--layer",
    help="Colour layer: all, fg (foreground alone) or bg (background network alone; models with one).",
)
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
    build_camera(None, yaw, pitch, fov, radius, look_at, degrees)


def build_camera(
    config: GeneratorConfig | None,
    yaw: float | None,
    pitch: float | None,
    fov: float | None,
    radius: float | None,
    look_at: str | None,
    degrees: bool,
) -> Camera:
    """The camera the options describe; ``config=None`` only checks them (no model defaults yet)."""
    return camera_from_options(config, yaw, pitch, radius, fov, parse_look_at(look_at), degrees)


@dataclass(frozen=True)
class CameraArgs:
    """The camera options of a rendering command, as typed, so they travel as one value."""

    yaw: float | None
    pitch: float | None
    fov: float | None
    radius: float | None
    look_at: str | None
    degrees: bool

    def build(self, config: GeneratorConfig | None) -> Camera:
        return build_camera(config, self.yaw, self.pitch, self.fov, self.radius, self.look_at, self.degrees)


def check_request(
    seeds: str,
    truncation: float,
    cutoff: int | None,
    resolution: int | None,
    batch_size: int,
    deterministic: bool,
    camera: CameraArgs,
) -> tuple[list[int], Truncation, RenderSettings]:
    """Every check of a rendering command that needs no model: seeds, truncation, settings, camera ranges."""
    seed_list = seeds_from_text(seeds)
    trunc, settings = check_common(truncation, cutoff, resolution, batch_size)
    settings.deterministic = deterministic
    camera.build(None)
    return seed_list, trunc, settings


@dataclass(frozen=True)
class LoadedRequest:
    """What a rendering command has once the model is loaded: G, its label, the class, the camera, the folder."""

    G: Generator
    label: str
    class_index: int | None
    camera: Camera
    out: Path
    cameras: list[Camera]  # the views to render: the camera, or the trajectory built on it


def load_request(
    model: str | None,
    device: str,
    quiet: bool,
    trunc: Truncation,
    class_: str | None,
    camera: CameraArgs,
    out: Path,
    colour: bool = True,
    views: Callable[[Camera], list[Camera]] | None = None,
) -> LoadedRequest:
    """Load the model, check what depends on it (truncation cutoff, class), build the camera, create ``out``.

    ``views(camera)``: the cameras to render (a trajectory built on the camera; default the camera alone).
    ``colour``: the command renders colour images, so every view must be outside the renderer's slab
    (checked before ``out`` exists; ``--shading geometry`` has no such limit).
    """
    from epigraf_tools.latents import resolve_class
    from epigraf_tools.rendering import check_cameras

    G, label = load_model(model, device, quiet)
    trunc.validate(G.num_ws)
    class_index = resolve_class(G.config, class_)
    cam = camera.build(G.config)
    cameras = [cam] if views is None else views(cam)
    if colour:
        check_cameras(G, cameras)
    return LoadedRequest(G, label, class_index, cam, prepare_out(out), cameras)


def video_options(fps: float | None, crf: int, trajectory_options: dict) -> VideoOptions:
    """--fps wins, then the keyframe file's fps, then 30; checked before the model loads."""
    return VideoOptions(fps=fps if fps is not None else trajectory_options.get("fps", 30.0), crf=crf).validate()


def load_model(model: str | None, device: str, quiet: bool = False) -> tuple[Generator, str]:
    """Load through ``checkpoints.loading`` (the one way every command loads); ``quiet`` hides transfer bars.

    Every rendering and export command loads here; an EG3D model comes back wrapped for the toolkit
    (``eg3d_model.EG3DModel``), so the commands serve both families.
    """
    from epigraf_tools.checkpoints.loading import load_generator
    from epigraf_tools.devices import resolve_device
    from epigraf_tools.distributed import context_from_env, device_for_rank
    from epigraf_tools.eg3d_model import as_toolkit_model

    dev = device_for_rank(resolve_device(device), context_from_env())
    label = str(model) if model is not None else "default"
    return as_toolkit_model(load_generator(model, dev, progress=not quiet), label), label


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


# ---------------------------------------------------------------------- --latent FILE.npz (epigraf invert)
LatentOption = typer.Option(
    None,
    "--latent",
    help="Render this latent (.npz from epigraf invert) instead of the seeds' (--seeds then set only the ray "
    "noise and the file names; default seed 0).",
)


def check_condition_on_view(condition_on_view: bool, latent: Path | None, shading: str | None = None) -> None:
    """--condition-on-view maps the seed's z through the camera-conditioned mapping: it needs a seed and colours."""
    if condition_on_view and latent is not None:
        raise EpigrafError("--condition-on-view maps a seed through the camera-conditioned mapping; a --latent is "
                           "already a w: drop one of them")  # fmt: skip
    if condition_on_view and shading == "geometry":
        raise EpigrafError("--condition-on-view is for colour renders; drop --shading geometry")


def check_latent_option(latent: Path | None):
    """Read and check a --latent file before any model loads (its fit to the model is checked once loaded)."""
    if latent is None:
        return None
    from epigraf_tools.latent_files import load_latent

    return load_latent(latent)


def latent_seeds(seeds: str | None, default: str, latent) -> str:
    """--seeds as given, else the command's default, or '0' when a latent is rendered (one image)."""
    if seeds is not None:
        return seeds
    return "0" if latent is not None else default


def apply_latent(G: Generator, label: str, latent, model: str | None, quiet: bool) -> str:
    """Pin the stored latent into ``G`` (every seed renders it) and return the label outputs record.

    A latent made with pivotal tuning looks right only through its tuned model: say how to use it
    when --model is not that folder.
    """
    if latent is None:
        return label
    from epigraf_tools.latent_files import latent_label, pin_latent

    pin_latent(G, latent)
    note_tuned_models([latent], model, quiet)
    return latent_label(label, latent)


def note_tuned_models(latents: list, model: str | None, quiet: bool) -> None:
    """Say on stderr which --model renders PTI latents as tuned, when --model is not that folder.

    One tuned folder: pass it. Several (keyframes inverted separately): one generator renders every
    frame, so no choice fits them all; say so once.
    """
    import sys

    folders: dict[Path, str] = {}
    for latent in latents:
        if latent.tuned_model is not None and latent.path is not None:
            folders.setdefault(latent.path.parent / latent.tuned_model, latent.path.name)
    if quiet or not folders:
        return
    if len(folders) > 1:
        names = ", ".join(folders.values())
        typer.echo(f"Note: {names} were made with pivotal tuning of different generators; one --model renders "
                   "every frame, so each looks as tuned only through its own", file=sys.stderr)  # fmt: skip
        return
    ((folder, name),) = folders.items()
    if model is None or Path(model).resolve() != folder.resolve():
        typer.echo(f"Note: {name} was made with pivotal tuning; pass --model {folder} to render it "
                   "with its tuned generator", file=sys.stderr)  # fmt: skip


KeyframeLatentOption = typer.Option(
    None,
    "--latent",
    help="Keyframes in order as latent files (.npz from epigraf invert) and seeds, e.g. photo.npz,5,other.npz "
    "(numbers and ranges are seeds; replaces --seeds; interpolates in w).",
)


def keyframes_from_text(text: str) -> list:
    """--latent A.npz,5,B.npz -> [StoredLatent, 5, StoredLatent]: a number or range (5, 2-4) gives seeds as
    --seeds does, anything else is a latent file (read and checked now, before any model loads; write ./5
    for a file named 5)."""
    import re

    from epigraf_tools.latent_files import load_latent

    keyframes: list = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise EpigrafError(f"--latent {text!r} has an empty keyframe (give files and seeds separated by commas)")
        if re.fullmatch(r"\d+(-\d+)?", item):
            keyframes.extend(parse_seeds(item))
        else:
            keyframes.append(load_latent(Path(item)))
    return keyframes

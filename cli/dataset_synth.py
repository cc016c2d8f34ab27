"""``epigraf dataset synth``: render the procedural shapes dataset (see training/synthetic.py)."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import typer

from epigraf_tools.errors import EpigrafError

from .common import DebugOption, QuietOption, echo, handle_errors

HELP = """Render a multi-view dataset of coloured primitives (sphere, box, torus, capsule) with exact cameras.

Objects sit at the origin; cameras look at it from yaw ~ U(-yaw_range, yaw_range) and pitch ~
U(pi/2 - pitch_range, pi/2 + pitch_range) at --radius with a --fov degree field of view. Shading is
view-independent and the background white by default, so the scene suits EpiGRAF exactly (train with
white_back, cube_scale 0.35, fov 30, rays 0.7-1.3). dataset.json holds camera_angles, class labels,
class_names and every image's shape parameters, so the ground truth geometry is known.

--background: white (default), black, textured (a sky panorama at infinity, looked up by ray
direction and so the same in every view: train it with --bg-model sphere to separate foreground and
background), or none (RGBA: the alpha channel is the object's mask, the colour is white).

[bold]Examples[/bold]

  epigraf dataset synth data/shapes64.zip --num-images 3000 --resolution 64

  epigraf dataset synth data/spheres.zip --shapes sphere,torus --num-images 500 --seed 1

  epigraf dataset synth data/sky32.zip --background textured --resolution 32 --num-images 2000
"""


@handle_errors
def synth_command(
    out: Path = typer.Argument(..., help="Output .zip (written atomically)."),
    num_images: int = typer.Option(2000, "--num-images", "-n", min=1, max=1_000_000, help="Number of images."),
    resolution: int = typer.Option(64, "--resolution", min=8, max=1024, help="Image size in pixels."),
    shapes: str = typer.Option("sphere,box,torus,capsule", "--shapes", help="Comma-separated shape families."),
    seed: int = typer.Option(0, "--seed", min=0, help="Random seed (shapes, colours, poses)."),
    fov: float = typer.Option(30.0, "--fov", min=1.0, max=120.0, help="Field of view in degrees."),
    radius: float = typer.Option(1.0, "--radius", min=0.5, max=10.0, help="Camera distance from the origin."),
    yaw_range: float = typer.Option(3.141592653589793, "--yaw-range", min=0.0, help="Yaw half-range (radians)."),
    pitch_range: float = typer.Option(0.5, "--pitch-range", min=0.0, max=1.5, help="Pitch half-range (radians)."),
    background: str = typer.Option(
        "white", "--background", help="white, black, textured (sky map at infinity) or none (RGBA with the mask)."
    ),
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.training.synthetic import SynthConfig, make_synthetic_dataset

    if out.suffix.lower() != ".zip":
        raise EpigrafError(f"the output must be a .zip file, got {out}")
    if out.parent.exists() and not out.parent.is_dir():
        raise EpigrafError(f"cannot write {out}: {out.parent} is not a folder")
    try:
        cfg = SynthConfig(
            num_images=num_images,
            resolution=resolution,
            seed=seed,
            shapes=tuple(s.strip() for s in shapes.split(",") if s.strip()),
            fov=fov,
            radius=radius,
            yaw_range=yaw_range,
            pitch_range=pitch_range,
            background=background,
        )
    except ValueError as exc:
        raise EpigrafError(str(exc)) from None
    if radius <= cfg.max_size + 0.05:
        raise EpigrafError(f"--radius {radius} puts the camera inside the objects (max size {cfg.max_size})")
    with synth_progress(quiet) as update:
        make_synthetic_dataset(out, cfg, progress=update)
    echo(f"wrote {out} ({num_images} images, {resolution}x{resolution})", quiet)


class LineProgress:
    """Progress for logs (stderr is not a terminal): a line every ``percent`` % or ``seconds`` s, and at the end."""

    def __init__(self, label: str, percent: float = 10.0, seconds: float = 10.0) -> None:
        self.label, self.percent, self.seconds = label, percent, seconds
        self.start = time.monotonic()
        self.last_time = self.start
        self.last_fraction = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        fraction = done / max(total, 1)
        if done < total and fraction - self.last_fraction < self.percent / 100 and now - self.last_time < self.seconds:
            return
        self.last_time, self.last_fraction = now, fraction
        elapsed = now - self.start
        left = f", ~{elapsed / fraction - elapsed:.0f} s left" if 0 < fraction < 1 else ""
        typer.echo(f"{self.label}: {done}/{total} ({fraction:.0%}), {elapsed:.0f} s{left}", err=True)


@contextlib.contextmanager
def synth_progress(quiet: bool) -> Iterator[Callable[[int, int], None]]:
    """A bar on a terminal, periodic lines in logs, nothing under --quiet (all on stderr)."""
    if quiet:
        yield lambda done, total: None
        return
    if not sys.stderr.isatty():
        yield LineProgress("rendering")
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task("rendering", total=None)
        yield lambda done, total: progress.update(task, completed=done, total=total)

"""``epigraf export-mesh``: marching-cubes meshes with true vertex colours, from a model or an MRC file."""

from __future__ import annotations

import math
from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, flag_names, handle_errors
from .geometry_args import (
    BoxOption,
    CenterOption,
    ForceOption,
    MethodOption,
    ValueOption,
    check_grid_options,
    geometry_hooks,
    prepare_writable_out,
)
from .render_args import (
    ClassOption,
    CutoffOption,
    LatentOption,
    TruncationOption,
    apply_latent,
    check_latent_option,
    load_model,
    seeds_from_text,
)

HELP = (
    "Extract iso-surface meshes (seedNNNN.ply ...) for seeds, or for an existing volume with --volume."
    "\n\n"
    "Vertices are in the model's world units (y up, faces look toward +x), faces point outward, and the "
    "volume is padded so meshes close. Level: --level auto (default) takes the model's default, the official "
    "threshold sigma = 25 in the volume's units (25 - density_shift for raw values), when it lies inside the "
    "data range, and otherwise suggests one from the data (midway between the empty and solid voxels' means). "
    "Colours are the field's own rgb at each vertex (EpiGRAF colour does not depend on the view); STL has none. "
    "A report (vertices, faces, watertightness, level) is printed and saved as NAME.mesh.json."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf export-mesh --seeds 0-3 --formats ply,glb --largest-component\n\n"
    "  epigraf export-mesh --model ffhq512 --seeds 42 --resolution 512 --faces 200000 --smooth 10\n\n"
    "  epigraf export-mesh --volume out/volumes/seed0042.mrc --level 30 --formats obj,stl\n\n"
    "  epigraf export-mesh --volume out/volumes/seed0042.mrc --model ffhq512 --colors\n\n"
    "  epigraf export-mesh --seeds 0 --formats glb,obj --faces 50000 --texture 1024   (textured, for Blender)\n"
)


def parse_level(text: str) -> float | None:
    """'auto' -> None, else a finite float; NaN and inf are refused here, before any model or volume is read."""
    if text is None or text.strip().lower() == "auto":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"--level must be a number or 'auto', got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"--level must be a finite number or 'auto', got {text!r}")
    return value


@handle_errors
def export_mesh_cmd(
    seeds: str = typer.Option(None, "--seeds", "-s", help="Seeds: ranges and lists such as 0-3,42 (default 0)."),
    volume: Path = typer.Option(None, "--volume", help="Mesh this .mrc file instead of sampling a model."),
    truncation: float = TruncationOption,
    truncation_cutoff: int = CutoffOption,
    class_: str = ClassOption,
    resolution: int = typer.Option(256, "--resolution", help="Grid points per axis when sampling a model (2-2048)."),
    box: str = BoxOption,
    center: str = CenterOption,
    value: str = ValueOption,
    force: bool = ForceOption,
    method: str = MethodOption,
    level: str = typer.Option("auto", "--level", help="Iso level in the volume's units, or 'auto'."),
    formats: str = typer.Option("ply", "--formats", help="Comma-separated: ply, obj, glb, stl."),
    colors: bool = typer.Option(
        None, "--colors/--no-colors", help="Vertex colours from the field (default: on when a model is at hand)."
    ),
    texture: int = typer.Option(
        None, "--texture", help="Bake the colours into an N x N texture for glb/obj (needs the [texture] extra)."
    ),
    largest_component: bool = typer.Option(False, "--largest-component", help="Keep only the largest piece."),
    faces: int = typer.Option(None, "--faces", help="Decimate to at most this many faces (quadric collapse)."),
    smooth: int = typer.Option(0, "--smooth", help="Taubin smoothing iterations (0 = off; 10 is a good start)."),
    out: Path = typer.Option(Path("out/meshes"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    latent: Path = LatentOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.geometry_export import MeshOptions, export_meshes, mesh_volume_file
    from epigraf_tools.heap import retain_freed_memory
    from epigraf_tools.latents import Truncation

    retain_freed_memory()  # a one-shot process: freed activations and volumes are reused, not faulted in again

    try:
        level_value = parse_level(level)
    except ValueError as exc:
        raise EpigrafError(str(exc)) from None
    options = MeshOptions(level_value, formats.split(","), largest_component, faces, smooth, colors, texture).validate()
    trunc = Truncation(truncation, truncation_cutoff).validate()
    hooks = geometry_hooks(quiet, on_report=lambda report: echo(describe(report, out), quiet))

    stored = check_latent_option(latent)
    if volume is not None:
        if stored is not None:
            raise EpigrafError("give either --latent (sample its density) or --volume (mesh a file), not both")
        if seeds is not None:
            raise EpigrafError("give either --seeds (sample a model) or --volume (mesh a file), not both")
        if (colors or texture is not None) and model is None:
            raise EpigrafError("colours for a --volume need the --model it came from (its seed is in the sidecar)")
        if not volume.is_file():
            raise EpigrafError(f"--volume {volume} does not exist")
        source = None if model is None else (lambda: load_model(model, device, quiet)[0])
        with flag_names({"output folder": "--out"}):
            mesh_volume_file(volume, out, options=options, G=source, hooks=hooks)
        return

    seed_list = seeds_from_text(seeds if seeds is not None else "0")
    grid = check_grid_options(resolution, box, center, value, method, force, in_memory=True)
    out = prepare_writable_out(out)
    G, label = load_model(model, device, quiet)
    label = apply_latent(G, label, stored, model, quiet)
    export_meshes(G, seed_list, out, truncation=trunc, class_index=class_, grid=grid, options=options, model=label,
                  hooks=hooks)  # fmt: skip


def describe(report, out: Path) -> str:
    """One line per mesh: the files, then vertices, faces, watertightness and level."""
    names = [Path(name) for name in report.files]
    stem = out / names[0].stem
    files = str(out / names[0]) if len(names) == 1 else f"{stem}.{{{','.join(n.suffix[1:] for n in names)}}}"
    return (
        f"{files}: {report.vertices:,} vertices, {report.faces:,} faces, "
        f"{'watertight' if report.watertight else 'not watertight'}, level {report.level:.4g} ({report.level_source})"
    )

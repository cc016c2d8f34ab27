"""``epigraf compare-geometry``: the paper's geometry comparison (volumes, meshes, ChimeraX script, turntables)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, QuietOption, echo, handle_errors
from .geometry_args import MethodOption, geometry_hooks, prepare_writable_out
from .render_args import ClassOption, CutoffOption, load_model, seeds_from_text

HELP = (
    "Compare the geometry of several models as the EpiGRAF paper does: for every model and seed a density "
    "volume (MRC + sidecar + .cxc) and a mesh at the model's level, one compare.cxc that opens all volumes side "
    "by side in ChimeraX (step 1, full lighting) and records a turntable movie, and turntable_seedNNNN.mp4 "
    "rendered here (lit iso-surfaces, models side by side) for anyone without ChimeraX."
    "\n\n"
    "Defaults follow the paper: 512^3 volumes and truncation 0.7. Each model gets a folder named after it in "
    "--out; compare.json lists models, seeds, levels and files."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf compare-geometry --models ffhq512,./my_model --seeds 0-3 --out out/compare\n\n"
    "  epigraf compare-geometry --models default,./tiny --seeds 0 --resolution 128 --frames 60\n\n"
    "  chimerax out/compare/compare.cxc   # writes out/compare/compare.mp4\n"
)


@handle_errors
def compare_geometry_cmd(
    models: str = typer.Option(
        ..., "--models", help="Comma-separated model specs (zoo names, folders, .pkl, Hub ids)."
    ),
    seeds: str = typer.Option("0-3", "--seeds", "-s", help="Seeds: ranges and lists such as 0-3,42."),
    truncation: float = typer.Option(0.7, "--truncation", help="Truncation psi (the paper: 0.7)."),
    truncation_cutoff: int = CutoffOption,
    class_: str = ClassOption,
    resolution: int = typer.Option(512, "--resolution", help="Volume grid points per axis (the paper: 512)."),
    formats: str = typer.Option("ply", "--formats", help="Mesh formats: any of ply,obj,glb,stl."),
    video_resolution: int = typer.Option(256, "--video-resolution", help="Turntable pixels per model."),
    frames: int = typer.Option(120, "--frames", help="Turntable frames (one full turn)."),
    fps: float = typer.Option(30.0, "--fps", help="Turntable frames per second."),
    method: str = MethodOption,
    out: Path = typer.Option(Path("out/compare"), "--out", "-o", help="Output folder (created if missing)."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.geometry_compare import compare_geometry, folder_names
    from epigraf_tools.geometry_export import MeshOptions
    from epigraf_tools.geometry_views import GeometryShading
    from epigraf_tools.latents import Truncation
    from epigraf_tools.video import VideoOptions, check_frames

    from .geometry_args import check_grid_options

    specs = [s.strip() for s in models.split(",")]
    if any(not s for s in specs):
        raise EpigrafError(f"--models has an empty entry in {models!r}; give specs like default,./my_model")
    with_flags = {"models": "--models", "seeds": "--seeds", "frames": "--frames"}
    from .common import flag_names

    with flag_names(with_flags):
        folder_names(specs)
        seed_list = seeds_from_text(seeds)
        check_frames(frames)
    trunc = Truncation(truncation, truncation_cutoff).validate()
    grid = check_grid_options(resolution, None, None, "raw", method, False, on_disk=out)
    with flag_names({"fps": "--fps"}):
        VideoOptions(fps=fps).validate()
    if isinstance(video_resolution, bool) or video_resolution < 2:
        raise EpigrafError(f"--video-resolution must be an integer number of pixels >= 2, got {video_resolution}")
    mesh = MeshOptions(formats=formats.split(",")).validate()
    out = prepare_writable_out(out)
    loaded = [(spec, load_model(spec, device, quiet)[0]) for spec in specs]  # every spec loads before any work
    hooks = geometry_hooks(quiet)
    report = compare_geometry(
        loaded,
        seed_list,
        out,
        truncation=trunc,
        class_index=class_,
        resolution=grid.resolution,
        mesh=mesh,
        video_resolution=video_resolution,
        frames=frames,
        fps=fps,
        shading=GeometryShading(),
        hooks=hooks,
        method=grid.method,
    )
    for model in report.models:
        levels = ", ".join(f"{lv:.4g}" for lv in model["levels"])
        echo(
            f"{model['label']}: {len(model['volumes'])} volumes and meshes in {out / model['folder']} "
            f"(levels {levels})",
            quiet,
        )
    echo(f"ChimeraX script: {report.script}  (chimerax {report.script.name} records compare.mp4)", quiet)
    echo(f"Turntables: {', '.join(str(v) for v in report.videos)}", quiet)

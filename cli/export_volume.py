"""``epigraf export-volume``: density volumes as ChimeraX-ready MRC files (+ JSON sidecar, .cxc script)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, handle_errors
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
    "Sample the density of each seed on an axis-aligned grid and write seedNNNN.mrc, seedNNNN.json and "
    "seedNNNN.cxc."
    "\n\n"
    "The grid has --resolution points per axis over a box that defaults to the model's whole tri-plane cube. "
    "The MRC is float32 with the voxel size and origin in the model's world units, and its axes are ordered "
    "so ChimeraX shows the object the right way round (the official script's files are mirrored). The JSON "
    "sidecar records the model, seed, truncation, class, box, value type, density percentiles and a "
    "suggested iso level; 'chimerax seedNNNN.cxc' opens the volume as a lit surface at that level. "
    "Volumes stream straight to disk: memory stays near the size of the volume itself."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf export-volume --seeds 0-3 --truncation 0.7\n\n"
    "  epigraf export-volume --model ffhq512 --seeds 42 --resolution 256 --box 0.3 --value sigma\n\n"
    "  epigraf export-volume --seeds 7 --box 0.1,0.1,0.2 --center 0.05,0,0 --out out/zoom\n\n"
    "  epigraf export-volume --seeds 0 --truncation 0.7 --cxc-movie   # then: chimerax seed0000.cxc\n"
)


@handle_errors
def export_volume_cmd(
    seeds: str = typer.Option("0", "--seeds", "-s", help="Seeds: ranges and lists such as 0-3,42."),
    truncation: float = TruncationOption,
    truncation_cutoff: int = CutoffOption,
    class_: str = ClassOption,
    resolution: int = typer.Option(512, "--resolution", help="Grid points per axis (2-2048)."),
    box: str = BoxOption,
    center: str = CenterOption,
    value: str = ValueOption,
    force: bool = ForceOption,
    method: str = MethodOption,
    cxc_movie: bool = typer.Option(
        False, "--cxc-movie", help="The .cxc also records a turntable movie seedNNNN.mp4 (ChimeraX turn + movie)."
    ),
    out: Path = typer.Option(Path("out/volumes"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    latent: Path = LatentOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.geometry_export import export_volumes
    from epigraf_tools.heap import retain_freed_memory
    from epigraf_tools.latents import Truncation

    retain_freed_memory()  # a one-shot process: tri-plane synthesis reuses its freed activations
    stored = check_latent_option(latent)
    seed_list = seeds_from_text(seeds)
    trunc = Truncation(truncation, truncation_cutoff).validate()
    grid = check_grid_options(resolution, box, center, value, method, force, on_disk=out)
    out = prepare_writable_out(out)
    G, label = load_model(model, device, quiet)
    label = apply_latent(G, label, stored, model, quiet)
    hooks = geometry_hooks(quiet, on_report=lambda report: echo(describe(report), quiet))
    export_volumes(
        G,
        seed_list,
        out,
        truncation=trunc,
        class_index=class_,
        grid=grid,
        model=label,
        hooks=hooks,
        chimerax_movie=cxc_movie,
    )
    echo(f"Wrote {3 * len(seed_list)} files to {out}", quiet)


def describe(report) -> str:
    """One line per volume: the file, its grid and value type, the value range and the suggested level."""
    side, stats = report.sidecar, report.stats
    return (
        f"{report.path}: {'x'.join(map(str, side['grid']['resolution']))} {side['value']}, range "
        f"[{stats['min']:.4g}, {stats['max']:.4g}], suggested level {report.suggested_level:.4g} "
        f"({report.suggested_level_source})"
    )

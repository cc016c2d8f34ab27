"""``epigraf export-mesh``: marching-cubes meshes with true vertex colours, from a model or an MRC file."""

from __future__ import annotations

import json
import math
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
    prepare_kernel,
    prepare_writable_out,
    stage_bar,
)
from .render_args import ClassOption, CutoffOption, TruncationOption, load_model, progress_bar, seeds_from_text

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
    "  epigraf export-mesh --volume out/volumes/seed0042.mrc --model ffhq512 --colors\n"
)


def register(app: typer.Typer) -> None:
    app.command("export-mesh", help=HELP)(export_mesh_cmd)


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
    largest_component: bool = typer.Option(False, "--largest-component", help="Keep only the largest piece."),
    faces: int = typer.Option(None, "--faces", help="Decimate to at most this many faces (quadric collapse)."),
    smooth: int = typer.Option(0, "--smooth", help="Taubin smoothing iterations (0 = off; 10 is a good start)."),
    out: Path = typer.Option(Path("out/meshes"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.latents import Truncation
    from epigraf_tools.mesh import parse_formats

    try:
        level_value = parse_level(level)
    except ValueError as exc:
        raise EpigrafError(str(exc)) from None
    fmt_list = parse_formats(formats)
    if faces is not None and faces < 4:
        raise EpigrafError(f"--faces must be at least 4, got {faces}")
    if smooth < 0:
        raise EpigrafError(f"--smooth must be >= 0 iterations, got {smooth}")
    trunc = Truncation(truncation, truncation_cutoff).validate()
    options = dict(level=level_value, formats=fmt_list, keep_largest=largest_component, max_faces=faces,
                   smooth=smooth, quiet=quiet)  # fmt: skip

    if volume is not None:
        if seeds is not None:
            raise EpigrafError("give either --seeds (sample a model) or --volume (mesh a file), not both")
        if colors and model is None:
            raise EpigrafError("colours for a --volume need the --model it came from (its seed is in the sidecar)")
        if not volume.is_file():
            raise EpigrafError(f"--volume {volume} does not exist")
        _mesh_volume_file(volume, model, device, colors, out, **options)
        return

    seed_list = seeds_from_text(seeds if seeds is not None else "0")
    box_arg, center_vals = check_grid_options(resolution, box, center, value, method, force, in_memory=True)
    out = prepare_writable_out(out)
    _mesh_seeds(seed_list, trunc, class_, resolution, box_arg, center_vals, value, force, method, model, device,
                colors, out, **options)  # fmt: skip


def _save(mesh, info: dict, stem: Path, formats: list[str], provenance: dict, quiet: bool) -> None:
    from epigraf_tools.atomic import write_text_atomic
    from epigraf_tools.mesh import export_mesh

    paths = export_mesh(mesh, stem, formats)
    report = {**provenance, **info, "files": [p.name for p in paths]}
    try:
        write_text_atomic(stem.with_name(stem.name + ".mesh.json"), json.dumps(report, indent=2) + "\n")
    except BaseException:
        for p in paths:
            p.unlink(missing_ok=True)
        raise
    names = f"{stem}.{formats[0]}" if len(formats) == 1 else f"{stem}.{{{','.join(formats)}}}"
    echo(
        f"{names}: {info['vertices']:,} vertices, {info['faces']:,} faces, "
        f"{'watertight' if info['watertight'] else 'not watertight'}, level {info['level']:.4g} "
        f"({info['level_source']})",
        quiet,
    )


def _stages(keep_largest: bool, smooth: int, max_faces: int | None, colors: bool) -> list[str]:
    names = ["marching cubes"]
    names += ["largest component"] if keep_largest else []
    names += ["smoothing"] if smooth > 0 else []
    names += ["decimation"] if max_faces is not None else []
    names += ["colours"] if colors else []
    return names


def _mesh_seeds(seed_list, trunc, class_, resolution, box_arg, center_vals, value, force, method, model, device,
                colors, out, level, formats, keep_largest, max_faces, smooth, quiet) -> None:  # fmt: skip
    import torch

    from epigraf_tools.isolevel import default_level
    from epigraf_tools.latents import class_name, resolve_class, ws_from_seeds
    from epigraf_tools.mesh import build_mesh
    from epigraf_tools.volume import extract_density, make_volume_grid

    G, label = load_model(model, device, quiet)
    trunc.validate(G.num_ws)
    class_index = resolve_class(G.config, class_)
    grid = make_volume_grid(G.config.cube_scale, resolution, box_arg, center_vals, force=force)
    prepare_kernel(method, G.mapping.w_avg.device.type, quiet)
    use_colors = colors is not False
    for seed in seed_list:
        with torch.no_grad():
            ws, classes = ws_from_seeds(G, [seed], trunc, class_index)
            planes = G.planes(ws, noise_mode="const")
        with progress_bar(f"seed{seed:04d} volume", quiet) as update:
            vol = extract_density(G, planes, grid=grid, value=value, method=method, progress=update)
        provenance = {
            "model": label, "seed": seed, "truncation_psi": trunc.psi, "truncation_cutoff": trunc.cutoff,
            "class_index": classes[0], "class_name": class_name(G.config, classes[0]), "value": value,
            "grid": grid.to_dict(), "units": "world (the model's coordinates; y up)",
        }  # fmt: skip
        stages = _stages(keep_largest, smooth, max_faces, use_colors)
        with stage_bar(f"seed{seed:04d} mesh", stages, quiet) as stage:
            mesh, info = build_mesh(
                vol, grid.voxel_size, grid.origin, level=level, model_default=default_level(G.config, value),
                keep_largest=keep_largest, smooth_iterations=smooth, max_faces=max_faces,
                color_field=(G, planes) if use_colors else None, stage=stage,
            )  # fmt: skip
        del vol
        _save(mesh, info, out / f"seed{seed:04d}", formats, provenance, quiet)


def _mesh_volume_file(path: Path, model, device, colors, out, level, formats, keep_largest, max_faces, smooth,
                      quiet) -> None:  # fmt: skip
    import torch

    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.latents import Truncation, ws_from_seeds
    from epigraf_tools.mesh import build_mesh, check_level
    from epigraf_tools.mrc import read_mrc

    vol = read_mrc(path)
    if level is not None:  # a bad level is a bad argument: fail before any work or output
        check_level(level, float(vol.data.min()), float(vol.data.max()))
    out = prepare_writable_out(out)
    side = vol.sidecar or {}
    color_field = None
    if model is not None and colors is not False:
        if "seed" not in side:
            if colors:
                raise EpigrafError(f"{path} has no sidecar with its seed ({path.with_suffix('.json').name})")
            echo(f"note: no sidecar with a seed beside {path}; writing the mesh without colours", quiet)
        else:
            G, _ = load_model(model, device, quiet)
            trunc = Truncation(float(side.get("truncation_psi", 1.0)), side.get("truncation_cutoff")).validate(G.num_ws)
            with torch.no_grad():
                ws, _ = ws_from_seeds(G, [int(side["seed"])], trunc, side.get("class_index"))
                color_field = (G, G.planes(ws, noise_mode="const"))
    provenance = {"volume": str(path), "units": "world (from the MRC header)"}
    provenance.update({k: side[k] for k in ("model", "seed", "truncation_psi", "class_index", "value") if k in side})
    stages = _stages(keep_largest, smooth, max_faces, color_field is not None)
    with stage_bar(path.stem, stages, quiet) as stage:
        mesh, info = build_mesh(
            vol.data, vol.voxel_size, vol.origin, level=level, model_default=side.get("default_level"),
            keep_largest=keep_largest, smooth_iterations=smooth, max_faces=max_faces, color_field=color_field,
            stage=stage,
        )  # fmt: skip
    _save(mesh, info, out / path.stem, formats, provenance, quiet)

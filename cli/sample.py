"""``epigraf sample``: images for seeds, with optional grid, depth, normals and alpha maps."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, handle_errors
from .geometry_args import IsoLevelOption, ShadingOption, VolumeResolutionOption, check_shading
from .render_args import (
    CameraArgs,
    ClassOption,
    CutoffOption,
    DegreesOption,
    DeterministicOption,
    FovOption,
    LatentOption,
    LayerOption,
    LookAtOption,
    PitchOption,
    RadiusOption,
    RawOption,
    ResolutionOption,
    TruncationOption,
    YawOption,
    apply_latent,
    check_condition_on_view,
    check_latent_option,
    check_request,
    latent_seeds,
    load_request,
    progress_bar,
)

HELP = (
    "Render images for seeds: seedNNNN.png per seed, plus an optional grid and depth / normal / alpha maps."
    "\n\n"
    "z is drawn as the official scripts draw it (numpy RandomState(seed)), so seed 42 here is seed 42 in the "
    "paper's code. Every PNG records seed, truncation, class, camera and model in a tEXt chunk, and "
    "seedNNNN.json repeats it with the list of files. Maps come as PNG (to look at) and .npy (values): depth = "
    "distance from the camera along each ray, normals = unit vectors in the camera frame (x right, y up, z "
    "towards the viewer), alpha = opacity of the foreground (a background network never adds to it; --layer fg|bg "
    "shows either colour layer of such a model alone). Under torchrun, seeds are split across processes."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf sample --seeds 0-15 --truncation 0.7 --grid\n\n"
    "  epigraf sample --model ffhq512 --seeds 42 --yaw 20 --pitch 80 --degrees --depth --normals\n\n"
    "  epigraf sample --model ./my_model --seeds 0-3 --class 5 --trajectory points --resolution 256\n\n"
    "  epigraf sample --seeds 0-3 --truncation 0.7 --shading geometry --resolution 256 --grid\n\n"
    "  torchrun --nproc_per_node 4 -m epigraf_tools.cli.app sample --seeds 0-999 --device cuda\n"
)


@handle_errors
def sample_cmd(
    seeds: str = typer.Option(None, "--seeds", "-s", help="Seeds: ranges and lists such as 0-15,42 (default 0-3)."),
    truncation: float = TruncationOption,
    truncation_cutoff: int = CutoffOption,
    class_: str = ClassOption,
    yaw: float = YawOption,
    pitch: float = PitchOption,
    degrees: bool = DegreesOption,
    fov: float = FovOption,
    radius: float = RadiusOption,
    look_at: str = LookAtOption,
    trajectory: str = typer.Option(
        None, "--trajectory", help="Render every seed from each camera of a trajectory (name or keyframe file)."
    ),
    frames: int = typer.Option(None, "--frames", help="Number of trajectory views (default: the trajectory's)."),
    resolution: int = ResolutionOption,
    grid: bool = typer.Option(False, "--grid", help="Also write grid.png with every seed."),
    depth: bool = typer.Option(False, "--depth", help="Also write depth maps (PNG + .npy)."),
    normals: bool = typer.Option(False, "--normals", help="Also write normal maps from the density gradient."),
    alpha: bool = typer.Option(False, "--alpha", help="Also write opacity maps (PNG + .npy)."),
    layer: str = LayerOption,
    batch_size: int = typer.Option(4, "--batch-size", help="Seeds rendered together."),
    deterministic: bool = DeterministicOption,
    raw: bool = RawOption,
    condition_on_view: bool = typer.Option(
        False,
        "--condition-on-view",
        help="EG3D models: condition the mapping on the rendered camera, not the frontal one (one view only).",
    ),
    shading: str = ShadingOption,
    level: str = IsoLevelOption,
    volume_resolution: int = VolumeResolutionOption,
    out: Path = typer.Option(Path("out/samples"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    latent: Path = LatentOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.distributed import context_from_env, process_group
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.sampling import save_samples
    from epigraf_tools.trajectories import get_trajectory
    from epigraf_tools.video import check_frames

    camera_args = CameraArgs(yaw, pitch, fov, radius, look_at, degrees)
    check_condition_on_view(condition_on_view, latent, shading)
    stored = check_latent_option(latent)
    seeds = latent_seeds(seeds, "0-3", stored)
    seed_list, trunc, settings = check_request(
        seeds, truncation, truncation_cutoff, resolution, batch_size, deterministic, camera_args
    )
    settings.raw = raw
    settings.layer = layer
    settings.validate()
    check_frames(frames)
    geometry = check_shading(shading, level, volume_resolution)
    if trajectory is not None:
        get_trajectory(trajectory, frames)  # validates the name, the file and the frame count
    elif frames is not None:
        raise EpigrafError("--frames needs --trajectory (sample renders one view per seed otherwise)")
    if condition_on_view and trajectory is not None:
        raise EpigrafError("--condition-on-view needs a single camera; drop --trajectory")
    ctx = context_from_env()
    if geometry is not None and ctx.world_size > 1:
        raise EpigrafError("--shading geometry runs in one process; start it without torchrun")

    views = None if trajectory is None else (lambda base: get_trajectory(trajectory, frames, base=base)[0])
    req = load_request(model, device, quiet, trunc, class_, camera_args, out, colour=geometry is None, views=views)
    settings.check_model(req.G)
    req = dataclasses.replace(req, label=apply_latent(req.G, req.label, stored, model, quiet))
    G = req.G
    if condition_on_view:
        from epigraf_tools.eg3d_model import conditioned_on

        G = conditioned_on(G, req.camera)
    cameras = req.cameras
    if geometry is not None:
        from epigraf_tools.geometry_views import save_geometry_samples

        with progress_bar("Shading geometry", quiet) as update:
            files = save_geometry_samples(
                req.G,
                seed_list,
                req.out,
                cameras=cameras,
                truncation=trunc,
                class_index=req.class_index,
                resolution=settings.resolution,
                shading=geometry,
                grid=grid,
                depth=depth,
                normals=normals,
                alpha=alpha,
                model=req.label,
                progress=update,
            )
        echo(f"Wrote {len(files)} files to {req.out}", quiet)
        return
    with process_group(ctx), progress_bar("Sampling", quiet or not ctx.is_main) as update:
        files = save_samples(
            G,
            seed_list,
            req.out,
            cameras=cameras,
            truncation=trunc,
            class_index=req.class_index,
            settings=settings,
            batch_size=batch_size,
            grid=grid,
            depth=depth,
            normals=normals,
            alpha=alpha,
            model=req.label,
            ctx=ctx,
            progress=update,
        )
    echo(f"Wrote {len(files)} files to {req.out}", quiet)

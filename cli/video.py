"""``epigraf video``: multi-view mp4s along a camera trajectory."""

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
    load_request,
    progress_bar,
    video_options,
)

HELP = (
    "Render mp4 videos along a camera trajectory: seedNNNN.mp4 per seed, or grid.mp4 with --grid."
    "\n\n"
    "Trajectories: front_circle (the official zoom-and-fly loop, 64 frames), wiggle and line (official, 16 "
    "frames), points (official, 3 views), orbit (360 degrees, 120 frames), yaw_sweep (60 frames), or a "
    ".json/.yaml keyframe file (see docs/toolkit.md). --yaw/--pitch/--fov/--radius/--look-at set the "
    "trajectory's centre view. Videos are H.264 yuv420p with the given --crf; --depth adds a _depth.mp4. "
    "Under torchrun, seeds are split across processes."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf video --seeds 0 --trajectory front_circle --truncation 0.7\n\n"
    "  epigraf video --seeds 0-8 --grid --trajectory orbit --frames 240 --fps 60 --resolution 256\n\n"
    "  epigraf video --model ffhq512 --seeds 7 --trajectory path.yaml --depth --crf 14\n\n"
    "  epigraf video --seeds 0 --trajectory orbit --shading geometry --resolution 256\n\n"
    "  epigraf video --model eg3d-ffhq512-128 --seeds 0 --trajectory wiggle --condition-on-view\n"
)


@handle_errors
def video_cmd(
    seeds: str = typer.Option("0", "--seeds", "-s", help="Seeds: ranges and lists such as 0-8,42."),
    trajectory: str = typer.Option(
        "front_circle",
        "--trajectory",
        "-t",
        help="front_circle, wiggle, line, points, orbit, yaw_sweep, or a .json/.yaml keyframe file.",
    ),
    frames: int = typer.Option(None, "--frames", help="Number of frames (default: the trajectory's own)."),
    fps: float = typer.Option(None, "--fps", help="Frames per second (default 30, or the keyframe file's)."),
    crf: int = typer.Option(18, "--crf", help="x264 quality: 0 lossless .. 51 worst (the official scripts use 10)."),
    grid: bool = typer.Option(False, "--grid", help="One video with all seeds tiled instead of one per seed."),
    columns: int = typer.Option(None, "--columns", help="Grid columns (default: about the square root)."),
    depth: bool = typer.Option(False, "--depth", help="Also write a depth video (near bright, far dark)."),
    truncation: float = TruncationOption,
    truncation_cutoff: int = CutoffOption,
    class_: str = ClassOption,
    yaw: float = YawOption,
    pitch: float = PitchOption,
    degrees: bool = DegreesOption,
    fov: float = FovOption,
    radius: float = RadiusOption,
    look_at: str = LookAtOption,
    resolution: int = ResolutionOption,
    batch_size: int = typer.Option(8, "--batch-size", help="Frames rendered together."),
    deterministic: bool = DeterministicOption,
    raw: bool = RawOption,
    layer: str = LayerOption,
    condition_on_view: bool = typer.Option(
        False,
        "--condition-on-view",
        help="EG3D models: condition the mapping on each frame's own camera (the latent follows the view), "
        "not on the frontal one for every frame.",
    ),
    shading: str = ShadingOption,
    level: str = IsoLevelOption,
    volume_resolution: int = VolumeResolutionOption,
    out: Path = typer.Option(Path("out/videos"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    latent: Path = LatentOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.distributed import context_from_env, process_group
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.trajectories import get_trajectory
    from epigraf_tools.video import check_frames, render_video

    camera_args = CameraArgs(yaw, pitch, fov, radius, look_at, degrees)
    check_condition_on_view(condition_on_view, latent, shading)
    stored = check_latent_option(latent)
    seed_list, trunc, settings = check_request(
        seeds, truncation, truncation_cutoff, resolution, batch_size, deterministic, camera_args
    )
    settings.raw = raw
    settings.layer = layer
    settings.validate()
    check_frames(frames)
    geometry = check_shading(shading, level, volume_resolution)
    if geometry is not None and layer != "all":
        raise EpigrafError("--layer picks a colour layer; --shading geometry shows the density surface, not colours")
    if geometry is not None and depth:
        raise EpigrafError("--depth videos are not available with --shading geometry (sample --depth has them)")
    if columns is not None and columns < 1:
        raise EpigrafError(f"--columns must be a positive integer, got {columns}")
    _, traj_options = get_trajectory(trajectory, frames)  # validates before the model loads
    options = video_options(fps, crf, traj_options)
    ctx = context_from_env()
    if geometry is not None and ctx.world_size > 1:
        raise EpigrafError("--shading geometry runs in one process; start it without torchrun")

    views = lambda base: get_trajectory(trajectory, frames, base=base)[0]  # noqa: E731
    req = load_request(model, device, quiet, trunc, class_, camera_args, out, colour=geometry is None, views=views)
    settings.check_model(req.G)
    req = dataclasses.replace(req, label=apply_latent(req.G, req.label, stored, model, quiet))
    cameras = req.cameras
    if geometry is not None:
        from epigraf_tools.geometry_views import render_geometry_video

        with progress_bar("Shading geometry frames", quiet) as update:
            files = render_geometry_video(
                req.G,
                seed_list,
                cameras,
                req.out,
                truncation=trunc,
                class_index=req.class_index,
                resolution=settings.resolution,
                shading=geometry,
                options=options,
                grid=grid,
                columns=columns,
                trajectory=str(trajectory),
                model=req.label,
                progress=update,
            )
        echo(f"Wrote {len(files)} files to {req.out}", quiet)
        return
    with process_group(ctx), progress_bar("Rendering frames", quiet or not ctx.is_main) as update:
        files = render_video(
            req.G,
            seed_list,
            cameras,
            req.out,
            grid=grid,
            depth=depth,
            truncation=trunc,
            class_index=req.class_index,
            settings=settings,
            options=options,
            batch_size=batch_size,
            columns=columns,
            trajectory=str(trajectory),
            model=req.label,
            ctx=ctx,
            progress=update,
            condition_on_view=condition_on_view,
        )
    echo(f"Wrote {len(files)} files to {req.out}", quiet)

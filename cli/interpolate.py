"""``epigraf interpolate``: latent interpolation between keyframe seeds, as mp4 or an image strip."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, handle_errors
from .render_args import (
    CameraArgs,
    ClassOption,
    CutoffOption,
    DegreesOption,
    DeterministicOption,
    FovOption,
    LayerOption,
    LookAtOption,
    PitchOption,
    RadiusOption,
    RawOption,
    ResolutionOption,
    TruncationOption,
    YawOption,
    check_common,
    load_request,
    progress_bar,
    seeds_from_text,
    video_options,
)

HELP = (
    "Interpolate between keyframe seeds in z (slerp) or w (lerp), optionally while the camera moves."
    "\n\n"
    "--frames is the number of frames per transition. Truncation is applied to every frame's w, towards a "
    "centre interpolated with the same weight, so keyframes look exactly like `epigraf sample` of those "
    "seeds. --loop returns to the first seed; --output strip writes one PNG with a row per transition."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf interpolate --seeds 0,5,9 --truncation 0.7 --loop\n\n"
    "  epigraf interpolate --seeds 1-4 --space w --frames 8 --output strip\n\n"
    "  epigraf interpolate --seeds 3,8 --frames 120 --trajectory orbit --resolution 256\n"
)


@handle_errors
def interpolate_cmd(
    seeds: str = typer.Option("0,1", "--seeds", "-s", help="Keyframe seeds in order, e.g. 0,5,9 or 0-3."),
    space: str = typer.Option("z", "--space", help="z: slerp of the latents; w: lerp after the mapping network."),
    frames: int = typer.Option(30, "--frames", help="Frames per transition."),
    loop: bool = typer.Option(False, "--loop", help="Return to the first seed (a seamless loop)."),
    trajectory: str = typer.Option(
        None, "--trajectory", "-t", help="Move the camera along a trajectory (name or keyframe file) meanwhile."
    ),
    output: str = typer.Option("mp4", "--output", help="mp4, or strip (one PNG, a row per transition)."),
    fps: float = typer.Option(None, "--fps", help="Frames per second (default 30, or the keyframe file's)."),
    crf: int = typer.Option(18, "--crf", help="x264 quality: 0 lossless .. 51 worst."),
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
    out: Path = typer.Option(Path("out/interpolations"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.distributed import context_from_env
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.interpolation import OUTPUTS, check_space, num_frames, render_interpolation
    from epigraf_tools.trajectories import check_trajectory_name, get_trajectory
    from epigraf_tools.video import check_frames

    camera_args = CameraArgs(yaw, pitch, fov, radius, look_at, degrees)
    seed_list = seeds_from_text(seeds)
    trunc, settings = check_common(truncation, truncation_cutoff, resolution, batch_size)
    settings.deterministic = deterministic
    settings.raw = raw
    settings.layer = layer
    settings.validate()
    check_space(space)
    check_frames(frames)
    if output not in OUTPUTS:
        raise EpigrafError(f"--output must be mp4 or strip, got {output!r}")
    camera_args.build(None)  # range checks
    total = num_frames(len(seed_list), frames, loop, output)
    traj_options: dict = {}
    if trajectory is not None:
        check_trajectory_name(trajectory)
        _, traj_options = get_trajectory(trajectory, total)
    options = video_options(fps, crf, traj_options)
    ctx = context_from_env()
    if not ctx.is_main:  # one sequence: under torchrun, rank 0 renders it and the others stand by
        echo(f"rank {ctx.rank}: interpolate runs on rank 0 only", quiet)
        return

    req = load_request(model, device, quiet, trunc, class_, camera_args, out)
    settings.check_model(req.G)
    cameras = [req.camera] if trajectory is None else get_trajectory(trajectory, total, base=req.camera)[0]
    with progress_bar("Interpolating", quiet) as update:
        files = render_interpolation(
            req.G,
            seed_list,
            req.out,
            frames=frames,
            space=space,
            loop=loop,
            cameras=cameras,
            output=output,
            truncation=trunc,
            class_index=req.class_index,
            settings=settings,
            options=options,
            batch_size=batch_size,
            trajectory=trajectory,
            model=req.label,
            progress=update,
        )
    echo(f"Wrote {len(files)} files to {req.out}", quiet)

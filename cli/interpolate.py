"""``epigraf interpolate``: interpolation between keyframes (seeds or latent files), as mp4 or an image strip."""

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
    KeyframeLatentOption,
    LayerOption,
    LookAtOption,
    PitchOption,
    RadiusOption,
    RawOption,
    ResolutionOption,
    TruncationOption,
    YawOption,
    check_common,
    keyframes_from_text,
    load_request,
    note_tuned_models,
    progress_bar,
    seeds_from_text,
    video_options,
)

HELP = (
    "Interpolate between keyframe seeds in z (slerp) or w (lerp), optionally while the camera moves."
    "\n\n"
    "--latent A.npz,B.npz gives the keyframes as latents from `epigraf invert` instead (plain numbers in the "
    "list are seeds, e.g. --latent photo.npz,5); these interpolate in w (the default then; --space z is refused). "
    "A latent keyframe looks as `epigraf sample --latent` renders it (ray noise of seed 0)."
    "\n\n"
    "--frames is the number of frames per transition. Truncation is applied to every frame's w, towards a "
    "centre interpolated with the same weight, so keyframes look exactly like `epigraf sample` of those "
    "seeds. --loop returns to the first seed; --output strip writes one PNG with a row per transition."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf interpolate --seeds 0,5,9 --truncation 0.7 --loop\n\n"
    "  epigraf interpolate --seeds 1-4 --space w --frames 8 --output strip\n\n"
    "  epigraf interpolate --seeds 3,8 --frames 120 --trajectory orbit --resolution 256\n\n"
    "  epigraf interpolate --latent out/inv/photo.npz,out/inv/other.npz --frames 60 --loop\n"
)


@handle_errors
def interpolate_cmd(
    seeds: str = typer.Option(None, "--seeds", "-s", help="Keyframe seeds in order, e.g. 0,5,9 or 0-3 (default 0,1)."),
    latent: str = KeyframeLatentOption,
    space: str = typer.Option(
        None, "--space", help="z: slerp of the latents; w: lerp after the mapping network (default z; w with --latent)."
    ),
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
    from epigraf_tools.interpolation import OUTPUTS, check_keyframe_space, num_frames, render_interpolation
    from epigraf_tools.latent_files import LatentFileError, StoredLatent
    from epigraf_tools.trajectories import check_trajectory_name, get_trajectory
    from epigraf_tools.video import check_frames

    camera_args = CameraArgs(yaw, pitch, fov, radius, look_at, degrees)
    if latent is not None and seeds is not None:
        raise EpigrafError("--latent lists every keyframe (files, and seeds as plain numbers: --latent a.npz,5); "
                           "drop --seeds")  # fmt: skip
    if latent is not None and space == "z":
        raise EpigrafError("--space z slerps seeds' z, but a latent file holds a w: use --space w with --latent")
    keyframes = keyframes_from_text(latent) if latent is not None else seeds_from_text(seeds or "0,1")
    stored = [k for k in keyframes if isinstance(k, StoredLatent)]
    space = space or ("w" if latent is not None else "z")
    trunc, settings = check_common(truncation, truncation_cutoff, resolution, batch_size)
    settings.deterministic = deterministic
    settings.raw = raw
    settings.layer = layer
    settings.validate()
    check_keyframe_space(keyframes, space)
    check_frames(frames)
    if output not in OUTPUTS:
        raise EpigrafError(f"--output must be mp4 or strip, got {output!r}")
    camera_args.build(None)  # range checks
    total = num_frames(len(keyframes), frames, loop, output)
    traj_options: dict = {}
    if trajectory is not None:
        check_trajectory_name(trajectory)
        _, traj_options = get_trajectory(trajectory, total)
    options = video_options(fps, crf, traj_options)
    ctx = context_from_env()
    if not ctx.is_main:  # one sequence: under torchrun, rank 0 renders it and the others stand by
        echo(f"rank {ctx.rank}: interpolate runs on rank 0 only", quiet)
        return

    views = None if trajectory is None else (lambda base: get_trajectory(trajectory, total, base=base)[0])
    req = load_request(model, device, quiet, trunc, class_, camera_args, out, views=views)
    settings.check_model(req.G)
    label = req.label
    if stored:  # each fits the model (num_ws x w_dim), before any rendering
        for key in stored:
            key.check_model(req.G)
        if req.G.c_dim > 0:
            raise LatentFileError("latent files are supported for unconditional models only (this one has classes)")
        note_tuned_models(stored, model, quiet)
        label = f"{label} + latent {', '.join(k.path.name for k in stored if k.path is not None)}"
    cameras = req.cameras
    with progress_bar("Interpolating", quiet) as update:
        files = render_interpolation(
            req.G,
            keyframes,
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
            model=label,
            progress=update,
        )
    echo(f"Wrote {len(files)} files to {req.out}", quiet)

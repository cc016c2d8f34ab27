"""``epigraf invert``: pictures -> latents (W or W+), optionally a pivotally tuned model, and previews."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, flag_names, handle_errors
from .render_args import (
    DegreesOption,
    PitchOption,
    YawOption,
    load_model,
    prepare_out,
    progress_bar,
)

HELP = (
    "Project pictures into the model: NAME.npz (latent, camera, loss curve), NAME.png (target, reconstruction, "
    "novel views) and, with --pti-steps, NAME-pti/ (the tuned generator, a normal model folder)."
    "\n\n"
    "Pictures of any size are resized (shorter side to the model's resolution) and centre-cropped; "
    "transparency is composited on the model's background. Give the camera the picture was taken from "
    "(--yaw/--pitch, an EG3D --camera-label, or a --dataset-json entry), or let --optimize-camera search it "
    "from the given (default: frontal) view. Face models expect their training crop (FFHQ alignment): see "
    "docs/inversion.md. Then render the result with --latent NAME.npz in sample, video, export-volume and "
    "export-mesh (with --model OUT/NAME-pti after tuning)."
    "\n\n[bold]Examples[/bold]\n\n"
    "  epigraf invert photo.png --out out/inv --pti-steps 200\n\n"
    "  epigraf invert a.png b.jpg --yaw 30 --pitch 80 --degrees --space w+ --steps 500\n\n"
    "  epigraf invert img00000042.png --model ffhq512 --dataset-json dataset.json --pti-steps 300\n\n"
    "  epigraf video --latent out/inv/photo.npz --model out/inv/photo-pti\n"
)

FLAGS = {
    "space": "--space",
    "steps": "--steps",
    "pti_steps": "--pti-steps",
    "lr": "--lr",
    "pti_lr": "--pti-lr",
    "starts": "--starts",
    "seed": "--seed",
    "camera label": "--camera-label",
}


@handle_errors
def invert_cmd(
    images: list[Path] = typer.Argument(..., help="Pictures to invert (PNG, JPEG, WebP, ...)."),
    space: str = typer.Option("w", "--space", help="w: one w for all layers; w+: one per layer (closer fits)."),
    steps: int = typer.Option(300, "--steps", help="Latent optimisation steps."),
    lr: float = typer.Option(0.02, "--lr", help="Adam learning rate of the latent."),
    pti_steps: int = typer.Option(0, "--pti-steps", help="Pivotal tuning steps (0: no tuning; 100-300 typical)."),
    pti_lr: float = typer.Option(1e-3, "--pti-lr", help="Adam learning rate of the tuned generator."),
    optimize_camera: bool = typer.Option(False, "--optimize-camera", help="Also optimise yaw and pitch."),
    starts: int = typer.Option(1, "--starts", help="Starts tried briefly (w_avg + random ones); the best continues."),
    seed: int = typer.Option(0, "--seed", help="Seed of the random starts and PTI's locality latents."),
    yaw: float = YawOption,
    pitch: float = PitchOption,
    degrees: bool = DegreesOption,
    camera_label: str = typer.Option(
        None,
        "--camera-label",
        help="EG3D camera label: 25 numbers (cam2world, then normalised intrinsics); for an EG3D model in EG3D's "
        "world at its neural resolution, as in its dataset.json.",
    ),
    dataset_json: Path = typer.Option(
        None, "--dataset-json", help="Take each picture's camera from this dataset.json (looked up by file name)."
    ),
    class_: str = typer.Option(None, "--class", help="The picture's class (class-conditional models)."),
    out: Path = typer.Option(Path("out/inversions"), "--out", "-o", help="Output folder (created if missing)."),
    model: str = ModelOption,
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.camera import camera_from_options
    from epigraf_tools.errors import EpigrafError
    from epigraf_tools.inversion import InversionOptions
    from epigraf_tools.inversion_files import (
        camera_from_dataset_json,
        camera_from_label,
        check_image_names,
        invert_images,
        parse_camera_label,
    )
    from epigraf_tools.latents import resolve_class
    from epigraf_tools.target_images import read_target

    with flag_names(FLAGS):
        options = InversionOptions(
            space=space, steps=steps, lr=lr, pti_steps=pti_steps, pti_lr=pti_lr,
            optimize_camera=optimize_camera, starts=starts, seed=seed,
        ).validate()  # fmt: skip
    sources = sum(x is not None for x in (camera_label, dataset_json)) + (yaw is not None or pitch is not None)
    if sources > 1:
        raise EpigrafError("give the camera one way: --yaw/--pitch, --camera-label or --dataset-json")
    label = parse_camera_label(camera_label) if camera_label is not None else None
    if dataset_json is not None and not dataset_json.is_file():
        raise EpigrafError(f"--dataset-json {dataset_json} does not exist")
    camera_from_options(None, yaw, pitch, degrees=degrees)  # range checks before loading
    paths = check_image_names(images)
    for p in paths:
        if not p.is_file():
            raise EpigrafError(f"image {p} does not exist")
    out = prepare_out(out)

    G, model_label = load_model(model, device, quiet)
    class_index = resolve_class(G.config, class_)
    for p in paths:  # every picture decodes before any work starts
        read_target(p, G.config.img_resolution, G.config.white_back)
    if label is not None:
        cameras = camera_from_label(G, label)
    elif dataset_json is not None:
        cameras = [camera_from_dataset_json(G, dataset_json, p) for p in paths]
    else:
        cameras = camera_from_options(G.config, yaw, pitch, degrees=degrees)

    def report(item) -> None:
        r = item.result
        tuned = f", tuned model {item.tuned_model}" if item.tuned_model is not None else ""
        echo(
            f"{item.image.name}: {r.psnr:.2f} dB, camera yaw {r.camera.yaw_degrees:.1f} pitch "
            f"{r.camera.pitch_degrees:.1f} deg -> {item.latent}, {item.preview}{tuned}",
            quiet,
        )

    with progress_bar("Inverting", quiet) as update:
        done = invert_images(G, paths, out, cameras, options, class_index, model_label, update, report)
    if done:
        echo(done[0].result.lpips_note, quiet)
        first = done[0]
        model_arg = f" --model {first.tuned_model}" if first.tuned_model is not None else _model_arg(model)
        echo(f"Next: epigraf video --latent {first.latent}{model_arg}", quiet)


def _model_arg(model: str | None) -> str:
    return "" if model is None else f" --model {model}"

"""``epigraf fid``: FID of a model against a dataset (StyleGAN / EpiGRAF protocol)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from epigraf_tools.errors import EpigrafError

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, handle_errors

HELP = """Compute FID between generated images and a dataset.

Needs NVIDIA's Inception weights inception-2015-12-05.pt (never downloaded by us): put the file at
~/.cache/epigraf/inception-2015-12-05.pt, or pass --inception PATH / set EPIGRAF_INCEPTION.

[bold]Examples[/bold]

  epigraf fid --model runs/small/snapshot-000200000 --data my64.zip --metric fid2k_full

  epigraf fid --model ffhq512 --data ffhq512.zip --out results/          (fid50k_full, writes results/fid.json)

  epigraf fid --model plants256 --data plants.zip --num-gen 5000 --inception ~/weights/inception-2015-12-05.pt
"""


@handle_errors
def fid_cmd(
    data: str = typer.Option(..., "--data", help="Real images: zip or folder (+ dataset.json for poses)."),
    model: str = ModelOption,
    metric: str = typer.Option("fid50k_full", "--metric", help="fid50k_full (paper) or fid2k_full (quick)."),
    num_gen: int = typer.Option(None, "--num-gen", help="Generated images (overrides the metric's count)."),
    max_real: int = typer.Option(None, "--max-real", help="Use at most this many real images (default: all)."),
    inception: Path = typer.Option(None, "--inception", help="Path of inception-2015-12-05.pt."),
    batch_size: int = typer.Option(16, "--batch-size", help="Images rendered per batch."),
    seed: int = typer.Option(0, "--seed", help="Seed of latents, poses and renderer noise."),
    camera_dist: str = typer.Option(
        "custom", "--camera-dist", help="Fake poses: custom (dataset poses), uniform, normal, spherical_uniform."
    ),
    out: Path = typer.Option(None, "--out", help="Folder for fid.json (created)."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.devices import resolve_device
    from epigraf_tools.training.metrics import METRICS, InceptionFeatures, compute_fid
    from epigraf_tools.training.poses import CameraDistribution, sample_camera_angles

    if metric not in METRICS:
        raise EpigrafError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    n_gen = num_gen if num_gen is not None else METRICS[metric]
    if n_gen < 2 or batch_size < 1:
        raise EpigrafError("--num-gen must be >= 2 and --batch-size >= 1")
    try:
        dist = CameraDistribution(camera_dist)
    except ValueError as exc:
        raise EpigrafError(str(exc)) from None
    dev = resolve_device(device)
    features = InceptionFeatures(inception, dev)  # fails here, before any work, without the weights

    from epigraf_tools.checkpoints.loading import load_generator
    from epigraf_tools.training.data import ImageDataset

    G = load_generator(model, dev, progress=not quiet)
    dataset = ImageDataset(
        data, resolution=G.config.img_resolution, require_poses=dist.dist == "custom", use_labels=G.c_dim > 0
    )
    if G.c_dim > 0 and dataset.c_dim != G.c_dim:
        raise EpigrafError(f"the model expects {G.c_dim}-d labels but {data} has {dataset.c_dim}-d labels")
    sampler = None if dist.dist == "custom" else (lambda n, gen: sample_camera_angles(dist, n, gen))

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=quiet
    ) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, i: int, n: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} images", total=n)
            bar.update(tasks[stage], completed=i)

        value = compute_fid(
            G,
            dataset,
            num_gen=n_gen,
            max_real=max_real,
            inception=features,
            batch_size=batch_size,
            seed=seed,
            camera_sampler=sampler,
            progress=progress,
        )
    name = metric if num_gen is None else f"fid{n_gen}"
    echo(f"{name}: {value:.4f}", quiet)
    if out is not None:
        from epigraf_tools.atomic import write_text_atomic

        record = {"metric": name, "value": value, "model": str(model), "data": data, "num_gen": n_gen}
        write_text_atomic(Path(out) / "fid.json", json.dumps(record, indent=2) + "\n")

"""``epigraf fid``: FID of a model against a dataset (StyleGAN / EpiGRAF protocol)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, flag_names, handle_errors

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
    import contextlib

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from epigraf_tools.checkpoints.loading import load_generator, require_epigraf_generator
    from epigraf_tools.training.metrics import evaluate_fid

    # The bar starts with the first image, after the model loaded: rich shows one live display at a
    # time, and loading may show its own download bars.
    with contextlib.ExitStack() as stack:
        bars: dict[str, Progress] = {}
        tasks: dict[str, int] = {}

        def progress(stage: str, i: int, n: int) -> None:
            if not bars:
                bars["bar"] = stack.enter_context(
                    Progress(
                        TextColumn("{task.description}"),
                        BarColumn(),
                        MofNCompleteColumn(),
                        TimeRemainingColumn(),
                        disable=quiet,
                    )
                )
            bar = bars["bar"]
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} images", total=n)
            bar.update(tasks[stage], completed=i)

        def _checked(G):
            require_epigraf_generator(G, "epigraf fid")
            return G

        if model is not None:
            require_epigraf_generator(model, "epigraf fid")
        with flag_names(FID_FLAGS):
            result = evaluate_fid(
                lambda dev: _checked(load_generator(model, dev, progress=not quiet)),
                data,
                metric=metric,
                num_gen=num_gen,
                max_real=max_real,
                inception=inception,
                batch_size=batch_size,
                seed=seed,
                camera_dist=camera_dist,
                device=device,
                model=model,
                out=out,
                progress=progress,
            )
    echo(f"{result.metric}: {result.value:.4f}", quiet)


FID_FLAGS = {"metric": "--metric", "num_gen": "--num-gen", "batch_size": "--batch-size"}

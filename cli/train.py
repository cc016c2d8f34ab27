"""``epigraf train``: patch-wise EpiGRAF training (a thin wrapper over ``epigraf_tools.training``)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from epigraf_tools.errors import EpigrafError

from .common import DebugOption, DeviceOption, QuietOption, echo, flag_names, handle_errors


def _option_table() -> str:
    from epigraf_tools.training.config import TrainConfig

    defaults = TrainConfig()
    parts = [f"{f.name}={getattr(defaults, f.name)!r}" for f in dataclasses.fields(TrainConfig)]
    return ", ".join(parts)


HELP = """Train EpiGRAF on a dataset of posed images (zip or folder with dataset.json).

Option precedence: TrainConfig defaults < --preset < the resumed run's config.json < --config FILE
< explicit options < --set KEY=VALUE.

[bold]Examples[/bold]

  epigraf train --data ffhq512.zip --gamma 0.1 --out runs/ffhq

  epigraf train --data my64.zip --preset small --kimg 200 --out runs/small --device cpu

  epigraf train --config ffhq.yaml --set d_camera_cond=true --set g_camera_cond=true --out runs/ffhq-gpc

  epigraf train --resume runs/small --kimg 400        (continue a run, here beyond its first goal)

  epigraf train --resume latest --out runs/small

  epigraf train --init ffhq512 --data my_faces512.zip --kimg 500 --out runs/finetune   (fine-tuning)

  torchrun --nproc_per_node 4 -m epigraf_tools.cli.app train --data ffhq512.zip --out runs/ffhq
"""
EPILOG = "All training options (for --set and config files): " + _option_table()


TRAIN_FLAGS = {"sets": "--set"}


def build_config(
    explicit: dict[str, Any],
    preset_name: str | None,
    config_file: Path | None,
    sets: list[str],
    resume: str | None,
) -> Any:
    """``training.config.resolve_train_config`` with the flags' names in its errors."""
    from epigraf_tools.training.config import resolve_train_config

    with flag_names(TRAIN_FLAGS):
        return resolve_train_config(explicit, preset_name, config_file, sets, resume)


def summary(cfg: Any) -> str:
    """A few lines describing the run, printed before training starts."""
    gamma = cfg.gamma
    lines = [
        f"data        {cfg.data}  (resolution {cfg.resolution or 'from data'}, mirror {cfg.mirror})",
        f"run dir     {cfg.out}",
        f"patches     {cfg.patch_res}px, {cfg.patch_dist} scales, beta {cfg.beta_val_start} -> {cfg.beta_val_end} "
        f"over {cfg.anneal_kimg} kimg",
        f"schedule    {cfg.kimg} kimg, batch {cfg.batch}, gamma {gamma}, R1 every {cfg.d_reg_interval} steps, "
        f"blur {cfg.blur_init_sigma} over {cfg.blur_fade_kimg} kimg",
        f"generator   z/w {cfg.z_dim}/{cfg.w_dim}, tri-plane {cfg.triplane_res}^2 x {cfg.feat_dim}, channels "
        f"{cfg.g_channel_base}/{cfg.g_channel_max}, {cfg.num_ray_steps}+{cfg.num_ray_steps} ray steps, "
        f"GPC {cfg.g_camera_cond}",
        f"discrim.    channels {cfg.d_channel_base}/{cfg.d_channel_max}, hyper_mod {cfg.hyper_mod}, camera cond "
        f"{cfg.d_camera_cond}",
        f"augment     {_augment_summary(cfg)}",
        f"optimiser   Adam lr G {cfg.g_lr} / D {cfg.d_lr}, betas {tuple(cfg.betas)}, "
        f"EMA {cfg.resolved_ema_kimg()} kimg",
        f"cameras     {cfg.camera_dist}, fov {cfg.fov}, rays {cfg.ray_start}-{cfg.ray_end}, cube {cfg.cube_scale}",
        f"background  {_background_summary(cfg)}",
        f"output      tick {cfg.tick_kimg} kimg, snapshot {cfg.snapshot_kimg} kimg, images {cfg.image_kimg} kimg, "
        f"device {cfg.device}, seed {cfg.seed}",
    ]
    return "\n".join(lines)


def _background_summary(cfg: Any) -> str:
    if cfg.bg_model in (None, "none", "null"):
        behind = {True: "white", False: "black"}.get(cfg.white_back, "the dataset's colour")
        return f"none ({behind} behind the foreground)"
    return f"{cfg.bg_model} network, {cfg.bg_num_steps} steps per ray, {cfg.bg_num_blocks} blocks"


def _augment_summary(cfg: Any) -> str:
    if cfg.augment == "ada":
        return (
            f"ada (p from {cfg.augment_p}, target {cfg.ada_target}, every {cfg.ada_interval} steps, "
            f"speed {cfg.ada_kimg} kimg)"
        )
    if cfg.augment == "fixed":
        return f"fixed p {cfg.augment_p}"
    return "none"


def _tick_line(rec: dict[str, Any], total_kimg: float | None = None) -> str:
    def fmt(key: str, label: str) -> str:
        v = rec.get(key)
        return f"{label} {v:.4f}" if isinstance(v, float) else ""

    parts = [
        f"tick {rec['tick']:<4d} kimg {rec['kimg']:<9.3f}",
        fmt("Loss/G/loss", "G"),
        fmt("Loss/D/loss", "D"),
        fmt("Loss/D/r1_penalty", "R1"),
        fmt("Aug/p", "p"),
        fmt("Aug/rt", "rt"),
        f"sec/kimg {rec['sec_per_kimg']:.1f}",
        _eta(rec["sec_per_kimg"], rec["kimg"], total_kimg),
    ]
    return "  ".join(p for p in parts if p)


def _eta(sec_per_kimg: float, kimg: float, total_kimg: float | None) -> str:
    """'eta 3h 20m': the time left to ``total_kimg`` at the given speed ('' when unknown or done)."""
    from epigraf_tools.training.auto_config import seconds_text

    if total_kimg is None or kimg >= total_kimg:
        return ""
    return f"eta {seconds_text((total_kimg - kimg) * sec_per_kimg)}"


@handle_errors
def train_cmd(
    data: str = typer.Option(None, "--data", help="Dataset: zip or folder of images + dataset.json (poses)."),
    resolution: int = typer.Option(None, "--resolution", help="Training resolution (images are resized)."),
    patch_res: int = typer.Option(
        None,
        "--patch-res",
        help="Patch resolution seen by D (default: 64 from 128^2 data up, else half the resolution).",
    ),
    gamma: str = typer.Option(None, "--gamma", help="R1 weight, or 'auto' (0.0002 res^2 / batch). Default 0.1."),
    kimg: float = typer.Option(None, "--kimg", help="Train until this many thousand real images were shown."),
    batch: int = typer.Option(None, "--batch", help="Total batch size over all processes (default 64)."),
    batch_gpu: int = typer.Option(
        None,
        "--batch-gpu",
        help="Samples per forward pass (gradient accumulation; default: the most that fit in memory, halved "
        "and the step redone if a step runs out of memory).",
    ),
    out: str = typer.Option(None, "--out", help="Run folder (created): snapshots, samples, log.jsonl."),
    model: str = typer.Option(
        None,
        "--init",
        "--model",
        "-m",
        help="Fine-tune: start G, and D when the source has one, from this model (zoo name, folder, .pkl, "
        "Hub id); its architecture is used. --model is the older name.",
    ),
    allow_camera_mismatch: bool = typer.Option(
        None,
        "--allow-camera-mismatch",
        help="Let camera options differ from the dataset.json 'camera' values (a warning instead of an error).",
    ),
    config: Path = typer.Option(None, "--config", help="YAML or JSON file of training options."),
    preset: str = typer.Option(None, "--preset", help="Starting point: ffhq512, res256 or small (CPU)."),
    resume: str = typer.Option(None, "--resume", help="Continue a run: RUN_DIR, a snapshot folder, or 'latest'."),
    set_: list[str] = typer.Option([], "--set", help="Any training option as KEY=VALUE (repeatable)."),
    snapshot_kimg: float = typer.Option(None, "--snapshot-kimg", help="Snapshot interval in kimg."),
    image_kimg: float = typer.Option(None, "--image-kimg", help="Preview-grid interval in kimg (0: off)."),
    tick_kimg: float = typer.Option(None, "--tick-kimg", help="Log interval in kimg."),
    seed: int = typer.Option(None, "--seed", help="Random seed (initialisation, data order, all draws)."),
    mirror: bool = typer.Option(None, "--mirror/--no-mirror", help="x-flip augmentation (mirrors yaw too)."),
    bg_model: str = typer.Option(
        None, "--bg-model", help="Background network: 'sphere' (NeRF++ inverse sphere, as the paper's FFHQ) or 'none'."
    ),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    gamma_value: Any = gamma
    if gamma is not None and gamma != "auto":
        try:
            gamma_value = float(gamma)
        except ValueError:
            raise EpigrafError(f"--gamma must be a number or 'auto', got {gamma!r}") from None
    explicit = dict(
        data=data,
        resolution=resolution,
        patch_res=patch_res,
        gamma=gamma_value,
        kimg=kimg,
        batch=batch,
        batch_gpu=batch_gpu,
        out=out,
        snapshot_kimg=snapshot_kimg,
        image_kimg=image_kimg,
        tick_kimg=tick_kimg,
        seed=seed,
        mirror=mirror,
        bg_model=bg_model,
        device=device if device != "auto" else None,
        init_model=model,
        allow_camera_mismatch=allow_camera_mismatch,
    )
    cfg = build_config(explicit, preset, config, set_, resume)
    if model is not None and resume is None:
        from epigraf_tools.checkpoints.loading import classify_spec, require_epigraf_generator

        classify_spec(model)  # a clear error before the dataset is read
        require_epigraf_generator(model, "epigraf train")
    dataset = check_dataset(cfg.data)
    from epigraf_tools.training.loop import resolve_for_dataset

    if dataset is not None:
        from epigraf_tools.training.dataset_cameras import DatasetCameraError

        try:
            resolve_for_dataset(cfg, dataset)  # a camera conflict is an error now, before any model is loaded
        except DatasetCameraError as exc:
            if resume is None:
                raise
            raise DatasetCameraError(
                f"{exc} (the resumed run's config.json holds the value it trained with: "
                "--allow-camera-mismatch continues it unchanged)"
            ) from None
    init = None
    if model is not None and resume is None:
        from epigraf_tools.checkpoints.init_weights import load_init_networks
        from epigraf_tools.devices import resolve_device

        init = load_init_networks(model, resolve_device(cfg.device), progress=not quiet)
        if init.D is None and not quiet:
            typer.echo(f"{model} has no discriminator: D starts from scratch", err=True)
    if dataset is not None:  # the summary shows what the run will use (the initial model's cameras as fallback)
        cfg = resolve_for_dataset(cfg, dataset, init.G if init else None)
    run(cfg, resume, quiet, init.G if init else None, init.D if init else None)


def check_dataset(data: str | None) -> Any:
    """Open the dataset's index (names, first image, dataset.json) before any model is loaded or built.

    A missing or unreadable dataset (or a dataset.json 'camera' object no camera can have) is then a
    one-line error in a second, not after minutes of setup. Returns the opened index (None: no data).
    """
    if not data:
        return None
    from epigraf_tools.training.data import ImageDataset

    return ImageDataset(data, check_sizes=False, require_poses=False, use_labels=False)


def run(cfg: Any, resume: str | None, quiet: bool, init_generator: Any = None, init_discriminator: Any = None) -> None:
    """Train with a rich progress bar and one status line per tick (rank 0 only prints)."""
    import os
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from epigraf_tools.training.loop import train

    is_main = int(os.environ.get("RANK", "0")) == 0
    quiet = quiet or not is_main
    echo(summary(cfg), quiet)

    def warn(message: str) -> None:  # shown even with --quiet: the run continues from an older snapshot
        typer.echo(message, err=True)

    if quiet:
        result = train(
            cfg, resume=resume, init_generator=init_generator, warn=warn, init_discriminator=init_discriminator
        )
    else:
        total = int(round(cfg.kimg * 1000))
        with Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images"),
            TimeRemainingColumn(),
            transient=True,
        ) as progress:
            task = progress.add_task("train", total=total)
            first: dict[str, float] = {}

            def on_step(cur: int, total_nimg: int) -> None:
                progress.update(task, completed=cur, total=total_nimg)
                if not first:  # the expected duration as soon as one step was timed
                    first.update(t=time.time(), nimg=cur)
                    return
                if "said" not in first and cur > first["nimg"]:
                    sec_per_kimg = (time.time() - first["t"]) / ((cur - first["nimg"]) / 1000)
                    first["said"] = 1
                    progress.console.print(
                        f"speed       about {sec_per_kimg:.1f} sec/kimg after one step; "
                        f"{_eta(sec_per_kimg, cur / 1000, total_nimg / 1000) or 'eta 0s'} to {total_nimg / 1000:g} kimg"
                    )

            def on_tick(rec: dict[str, Any]) -> None:
                progress.console.print(_tick_line(rec, cfg.kimg))

            result = train(
                cfg,
                resume=resume,
                on_step=on_step,
                on_tick=on_tick,
                log=progress.console.print,
                init_generator=init_generator,
                warn=warn,
                init_discriminator=init_discriminator,
            )
    snap = result.last_snapshot
    echo(f"Done at {result.cur_nimg / 1000:.3f} kimg; last snapshot: {snap if snap else 'none'}", quiet)

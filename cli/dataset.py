"""``epigraf dataset info``: counts, resolution, labels and pose statistics of a training dataset."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer

from epigraf_tools.errors import EpigrafError

from .common import DebugOption, QuietOption, handle_errors

HELP = """Print counts, resolution, labels and camera-pose statistics of a dataset (zip or folder).

Every image header is read, so size problems show up here rather than hours into training.

[bold]Examples[/bold]

  epigraf dataset info data/ffhq512.zip

  epigraf dataset info data/plants/ --json

  epigraf dataset info data/lego128.zip --plot lego_poses.png
"""


def format_info(info: dict) -> str:
    lines = [
        f"path        {info['path']} ({info['kind']})",
        f"images      {info['num_images']}",
        f"resolution  {info['resolution']}x{info['resolution']}",
        f"labels      {'none' if info['c_dim'] == 0 else str(info['c_dim']) + '-d'}",
    ]
    if info.get("class_counts"):
        counts = info["class_counts"]
        lines.append(f"classes     {len(counts)} (smallest {min(counts)}, largest {max(counts)} images)")
    poses = info.get("poses")
    if poses is None:
        lines.append("poses       none (train with a camera distribution, e.g. --set camera_dist=spherical_uniform)")
    else:
        deg = 180 / math.pi
        lines.append(
            f"yaw         mean {poses['yaw_mean']:+.3f}  std {poses['yaw_std']:.3f}  "
            f"range [{poses['yaw_min']:+.3f}, {poses['yaw_max']:+.3f}] rad "
            f"([{poses['yaw_min'] * deg:+.1f}, {poses['yaw_max'] * deg:+.1f}] deg)"
        )
        lines.append(
            f"pitch       mean {poses['pitch_mean']:.3f}  std {poses['pitch_std']:.3f}  "
            f"range [{poses['pitch_min']:.3f}, {poses['pitch_max']:.3f}] rad "
            f"([{poses['pitch_min'] * deg:.1f}, {poses['pitch_max'] * deg:.1f}] deg)"
        )
        if info.get("pose_warning"):
            lines.append(f"warning     {info['pose_warning']}")
    return "\n".join(lines)


@handle_errors
def info_cmd(
    path: str = typer.Argument(..., help="Dataset zip or folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the information as JSON."),
    plot: Path = typer.Option(None, "--plot", help="Also draw pose histograms and an image grid into this PNG."),
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    import warnings

    from epigraf_tools.training.data import dataset_info

    if plot is not None:
        if plot.suffix.lower() != ".png":
            raise EpigrafError(f"--plot writes a PNG: the file name must end in .png, got {plot}")
        if not plot.parent.is_dir():
            raise EpigrafError(f"cannot write {plot}: the folder {plot.parent} does not exist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the centring problem is reported in the output instead
        info = dataset_info(path)
        if plot is not None:
            from epigraf_tools.training.dataset_plot import plot_dataset

            plot_dataset(path, plot)
    if quiet:
        return
    typer.echo(json.dumps(info, indent=2) if as_json else format_info(info))
    if plot is not None and not as_json:
        typer.echo(f"plot        {plot}")

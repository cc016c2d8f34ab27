"""``epigraf dataset import``: posed images (EG3D, transforms.json, COLMAP, yaw/pitch table) -> EpiGRAF dataset."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, QuietOption, echo, flag_names, handle_errors, with_flag

# ImportOptions field -> flag: option errors ("resolution must ...") and fixes ("pass fov=DEGREES") name the flag
FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in ("format", "resolution", "up", "radius", "fov", "background", "angle_units", "images")
}
KEYWORDS = {**FLAGS, "allow_duplicate_poses": "--allow-duplicate-poses"}

HELP = """Build an EpiGRAF training dataset (zip + dataset.json) from posed images.

SRC is one of: an EG3D dataset (folder or zip whose dataset.json has 25-number camera labels); a
NeRF / Blender / instant-ngp transforms.json (or the folder holding it, or transforms_*.json splits);
a COLMAP model folder (cameras + images .txt, or .bin with pycolmap installed; sparse/0 is looked in);
a CSV or JSON of yaw/pitch per image. Cameras are moved to orbit the origin (the look-at point is the
point nearest to every optical axis, the median distance becomes --radius, up is detected) and the
images are square-cropped and resized. Broken poses (NaN, non-rotations, duplicates, all-zero yaws)
and missing images are refused before anything is written.

[bold]Examples[/bold]

  epigraf dataset import scenes/lego/ --out data/lego128.zip --resolution 128

  epigraf dataset import colmap_project/ --format colmap --out data/statue.zip

  epigraf dataset import poses.csv --angle-units degrees --fov 18 --out data/faces.zip
"""


@handle_errors
def import_cmd(
    src: Path = typer.Argument(..., help="Source: folder, zip, transforms.json, or a .csv/.json of angles."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .zip (written atomically)."),
    fmt: str = typer.Option("auto", "--format", help="auto, eg3d, transforms, colmap or angles."),
    resolution: int = typer.Option(
        None, "--resolution", help="Output size (power of two; default: largest that fits)."
    ),
    images: Path = typer.Option(None, "--images", help="Folder of the images, when not beside the pose file."),
    up: str = typer.Option("auto", "--up", help="Source up axis: auto, +x, -x, +y, -y, +z, -z or mean."),
    radius: float = typer.Option(1.0, "--radius", help="Camera distance the median camera gets (world units)."),
    fov: float = typer.Option(None, "--fov", help="Field of view in degrees (needed for angle tables)."),
    angle_units: str = typer.Option(None, "--angle-units", help="degrees or radians (angle tables)."),
    background: str = typer.Option(
        "white", "--background", help="white or black: behind transparent pixels, and camera.white_back."
    ),
    allow_duplicate_poses: bool = typer.Option(
        False, "--allow-duplicate-poses", help="Accept images with identical cameras (multi-object sets)."
    ),
    centre_yaw: bool = typer.Option(False, "--centre-yaw", help="Rotate so the circular mean yaw is 0 (frontal)."),
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.dataset_import import ImportOptions, import_dataset

    options = ImportOptions(
        format=fmt,
        resolution=resolution,
        images=images,
        up=up,
        radius=radius,
        fov=fov,
        angle_units=angle_units,
        background=background,
        allow_duplicate_poses=allow_duplicate_poses,
        centre_yaw=centre_yaw,
    )
    with flag_names(FLAGS, KEYWORDS):
        report = import_dataset(src, out, options)
    cam = report.camera
    echo(
        f"wrote {report.out} ({report.num_images} images, {report.resolution}x{report.resolution}, "
        f"from {report.format}; fov {cam['fov']:.3f} deg, radius {cam['radius']:g}, up {report.up})",
        quiet,
    )
    for note in report.warnings:
        typer.echo(f"warning: {with_flag(note, FLAGS, KEYWORDS)}", err=True)

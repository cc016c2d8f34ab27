"""The ``epigraf`` command: a typer app whose commands are thin wrappers over ``epigraf_tools``.

Each command lives in its own module and registers itself through ``register(app)``; the list
below is the whole command set, so ``epigraf --help`` shows exactly what exists.
"""

from __future__ import annotations

import importlib
import sys

import typer

app = typer.Typer(
    name="epigraf",
    help="EpiGRAF 3D GAN toolkit: samples, videos, interpolations, density volumes and meshes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

# Modules under epigraf_tools.cli that define ``register(app)``.
COMMAND_MODULES: list[str] = [
    "train",
    "dataset_cmd",
    "dataset_synth",
    "metrics_cmd",
    "sample",
    "video",
    "interpolate",
    "models_cmd",
    "download",
    "convert",
    "export_volume",
    "export_mesh",
]

for _name in COMMAND_MODULES:
    importlib.import_module(f"epigraf_tools.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app(prog_name="epigraf")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

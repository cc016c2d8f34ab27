"""``epigraf convert PKL OUT_DIR``: official snapshot -> our model folder, optionally pushed to the Hub."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, QuietOption, echo, flag_names, handle_errors

HELP = """Convert an official EpiGRAF snapshot (.pkl) into a model folder, optionally pushed to the Hub.

The folder holds config.json + model.safetensors (G_ema), README.md (model card: source, \
licence, camera, box, iso level) and official_config.json (the official model/dataset/training \
config and the file's SHA-256).

The pickle is read with a restricted unpickler: nothing stored in it is executed (official \
snapshots embed their network source code; it is ignored). Unknown classes, globals outside the \
allow-list, missing keys and shape mismatches are refused with a message naming them. \
The conversion keeps the official licence (NVIDIA's Source Code License-NC for the released models).

[bold]Examples[/bold]

  epigraf convert network-snapshot-005000.pkl models/ffhq512

  epigraf convert snapshot.pkl models/plants --include-discriminator

  epigraf convert snapshot.pkl models/food --push-to-hub me/epigraf-food256 --private
"""


@handle_errors
def convert_cmd(
    pkl: Path = typer.Argument(None, metavar="PKL", help="Official snapshot (network-snapshot-*.pkl)."),
    out_dir: Path = typer.Argument(None, metavar="OUT_DIR", help="Model folder to write (created)."),
    model: Path = typer.Option(None, "--model", "-m", help="Same as PKL."),
    out: Path = typer.Option(None, "--out", "-o", help="Same as OUT_DIR."),
    push_to_hub: str = typer.Option(None, "--push-to-hub", help="Upload the folder to this Hub repo id."),
    private: bool = typer.Option(False, "--private", help="With --push-to-hub: create the repo as private."),
    include_discriminator: bool = typer.Option(
        False, "--include-discriminator", help="Also write D's weights and config (for resuming training)."
    ),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in OUT_DIR."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.checkpoints.official_pickle import convert_snapshot
    from epigraf_tools.errors import EpigrafError

    pkl = _one_of(pkl, model, "PKL", "--model")
    out_dir = _one_of(out_dir, out, "OUT_DIR", "--out")
    if pkl is None or out_dir is None:
        raise EpigrafError("usage: epigraf convert PKL OUT_DIR (see --help)")

    def written(result) -> None:
        names = ", ".join(result.files)
        echo(f"Wrote {result.folder} ({names}); {result.num_params / 1e6:.2f} M parameters", quiet)

    with flag_names({"push_to_hub": "--push-to-hub"}):
        result = convert_snapshot(
            pkl,
            out_dir,
            include_discriminator=include_discriminator,
            overwrite=overwrite,
            device=device,
            push_to_hub=push_to_hub,
            private=private,
            progress=not quiet,
            on_written=written,
        )
    if result.url is not None:
        echo(f"Pushed to {result.url}", quiet)


def _one_of(positional: Path | None, option: Path | None, name: str, flag: str) -> Path | None:
    from epigraf_tools.errors import EpigrafError

    if positional is not None and option is not None and positional != option:
        raise EpigrafError(f"give {name} once: as an argument or with {flag}")
    return positional if positional is not None else option

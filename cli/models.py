"""``epigraf models``: list the model zoo, or describe one model spec."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, QuietOption, echo, flag_names, handle_errors

HELP = """List the model zoo, or describe one model with --model.

The table shows each name's resolution, classes, source, licence and whether it is on this machine. \
Names work everywhere a model is expected (--model NAME). The official checkpoints are fetched \
from their authors' share pages on first use and converted once; they are under the NVIDIA \
Source Code License-NC (non-commercial use only).

[bold]Examples[/bold]

  epigraf models

  epigraf models --json --out reports/

  epigraf models --model ffhq512

  epigraf models --model org/my-epigraf@v1 --check --device cpu
"""


def _rows_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, caption="NVIDIA-NC: NVIDIA's Source Code License-NC, non-commercial use only")
    for column in ("name", "resolution", "classes", "licence", "source", "status"):
        table.add_column(column, overflow="fold")
    for r in rows:
        res = f"{r['resolution']}x{r['resolution']}" if r["resolution"] else "?"
        classes = "?" if r["classes"] is None else ("none" if r["classes"] == 0 else str(r["classes"]))
        licence = "NVIDIA-NC" if "NVIDIA" in r["licence"] else r["licence"]
        source = r["source"].removeprefix("https://")
        table.add_row(r["name"], res, classes, licence, source, r["status"])
    Console().print(table)


@handle_errors
def models_cmd(
    model: str = typer.Option(None, "--model", "-m", help="Describe this model spec instead of the zoo."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    check: bool = typer.Option(False, "--check", help="With --model: load it (downloading if needed)."),
    out: Path = typer.Option(None, "--out", "-o", help="Also write models.json into this folder."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.checkpoints.zoo import describe_model
    from epigraf_tools.errors import EpigrafError

    if check and model is None:
        raise EpigrafError("--check needs --model SPEC")
    with flag_names({"out": "--out"}):
        data = describe_model(model, check=check, device=device, progress=not quiet, out=out)
    if quiet:
        return
    if as_json or isinstance(data, dict):
        echo(json.dumps(data, indent=2, default=str))
    else:
        _rows_table(data)

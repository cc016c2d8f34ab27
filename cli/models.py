"""``epigraf models``: list the model zoo, or describe one model spec."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, QuietOption, echo, handle_errors

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


def describe_spec(spec: str) -> dict:
    """What ``--model spec`` refers to, with its config when it is already local (no downloads)."""
    from epigraf_tools.checkpoints.loading import classify_spec
    from epigraf_tools.checkpoints.zoo import entry_info, get_entry

    parsed = classify_spec(spec)
    info: dict = {"spec": spec, "kind": parsed.kind}
    folder = None
    if parsed.kind == "zoo":
        row = entry_info(get_entry(parsed.value))
        info.update(row)
        folder = Path(row["path"]) if row["path"] else None
    elif parsed.kind == "folder":
        folder = Path(parsed.value)
    elif parsed.kind == "hub":
        info.update(repo_id=parsed.value, revision=parsed.revision)
    else:
        info.update(path=parsed.value, note="an official snapshot: converted in memory when loaded")
    if folder is not None and (folder / "config.json").is_file():
        info["config"] = json.loads((folder / "config.json").read_text())
    return info


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
    from epigraf_tools.checkpoints.zoo import entry_info, zoo_entries
    from epigraf_tools.devices import resolve_device
    from epigraf_tools.errors import EpigrafError

    if check and model is None:
        raise EpigrafError("--check needs --model SPEC")
    dev = resolve_device(device)
    if out is not None and out.exists() and not out.is_dir():
        raise EpigrafError(f"--out {out} exists and is not a folder")
    data: dict | list
    if model is None:
        data = [entry_info(e) for e in zoo_entries()]
    else:
        data = describe_spec(model)
        if check:
            from epigraf_tools.checkpoints.loading import load_generator

            G = load_generator(model, dev, progress=not quiet)
            data["check"] = {
                "device": str(dev),
                "parameters": sum(p.numel() for p in G.parameters()),
                "num_ws": G.num_ws,
                "img_resolution": G.config.img_resolution,
            }
    if out is not None:
        from epigraf_tools.atomic import write_text_atomic

        out.mkdir(parents=True, exist_ok=True)
        write_text_atomic(out / "models.json", json.dumps(data, indent=2, default=str) + "\n")
    if quiet:
        return
    if as_json or isinstance(data, dict):
        echo(json.dumps(data, indent=2, default=str))
    else:
        _rows_table(data)

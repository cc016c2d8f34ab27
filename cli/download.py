"""``epigraf download SPEC``: prefetch a model so later commands (and offline use) find it locally."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, QuietOption, echo, flag_names, handle_errors

HELP = """Prefetch a model (a zoo name or a Hub repo id, optionally @revision) for later or offline use.

Hub models go to the standard Hugging Face cache (HF_HOME / HF_HUB_CACHE; HF_ENDPOINT and \
HF_TOKEN are honoured), official checkpoints to the epigraf cache ($EPIGRAF_CACHE, else \
~/.cache/epigraf) after a safe conversion. Afterwards the model loads with HF_HUB_OFFLINE=1. \
The local folder is printed; --out also copies the model files into a folder of your choice.

[bold]Examples[/bold]

  epigraf download ffhq512

  epigraf download org/my-epigraf@v1.0 --out models/my-epigraf

  epigraf download org/my-epigraf --sha256 3f2a...e9 --force
"""


@handle_errors
def download_cmd(
    spec: str = typer.Argument(None, metavar="SPEC", help="Zoo name or Hub repo id, optionally @revision."),
    model: str = typer.Option(None, "--model", "-m", help="Same as SPEC."),
    revision: str = typer.Option(None, "--revision", help="Branch, tag or commit (overrides @revision)."),
    sha256: str = typer.Option(None, "--sha256", help="Expected SHA-256 of model.safetensors (Hub models)."),
    force: bool = typer.Option(False, "--force", help="Download again even if cached."),
    keep_pickle: bool = typer.Option(False, "--keep-pickle", help="Official models: keep the downloaded .pkl."),
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Load the model once to check it builds."),
    out: Path = typer.Option(None, "--out", "-o", help="Also copy the model files into this folder."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a model already in --out."),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.checkpoints.loading import fetch_model
    from epigraf_tools.errors import EpigrafError

    if spec and model and spec != model:
        raise EpigrafError("give the model once: either SPEC or --model")
    if not (spec or model):
        raise EpigrafError("missing SPEC: a zoo name (see `epigraf models`) or a Hub repo id[@revision]")
    with flag_names({"sha256": "--sha256", "revision": "--revision"}):
        fetched = fetch_model(
            spec or model,
            revision=revision,
            sha256=sha256,
            force=force,
            keep_pickle=keep_pickle,
            verify=verify,
            device=device,
            out=out,
            overwrite=overwrite,
            progress=not quiet,
        )
    if fetched.parameters is not None:
        echo(f"Checked: {fetched.parameters / 1e6:.2f} M parameters on {fetched.device}", quiet)
    if fetched.copied_to is not None:
        echo(f"Copied to {fetched.copied_to}", quiet)
    echo(str(fetched.folder), quiet)

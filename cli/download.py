"""``epigraf download SPEC``: prefetch a model so later commands (and offline use) find it locally."""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from .common import DebugOption, DeviceOption, QuietOption, echo, handle_errors

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

COPIED_FILES = ("config.json", "model.safetensors", "README.md", "official_config.json")


def register(app: typer.Typer) -> None:
    @app.command("download", help=HELP)
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
        import re

        from epigraf_tools.checkpoints.loading import classify_spec
        from epigraf_tools.checkpoints.official_pickle import check_output_folder
        from epigraf_tools.devices import resolve_device
        from epigraf_tools.errors import EpigrafError

        if spec and model and spec != model:
            raise EpigrafError("give the model once: either SPEC or --model")
        spec = spec or model
        if not spec:
            raise EpigrafError("missing SPEC: a zoo name (see `epigraf models`) or a Hub repo id[@revision]")
        parsed = classify_spec(spec)
        if parsed.kind in ("folder", "pickle"):
            hint = " (convert it with `epigraf convert`)" if parsed.kind == "pickle" else ""
            raise EpigrafError(f"{spec} is already a local {parsed.kind}; nothing to download{hint}")
        if sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
            raise EpigrafError("--sha256 must be 64 hexadecimal digits")
        if sha256 is not None and parsed.kind != "hub":
            raise EpigrafError("--sha256 applies to Hub models; zoo entries carry their own checksums")
        if revision is not None and parsed.kind != "hub":
            raise EpigrafError("--revision applies to Hub models")
        if revision is not None:
            from epigraf_tools.checkpoints.hub import validate_revision

            validate_revision(revision)  # it becomes a file name in the cache: check before any request
        dev = resolve_device(device) if verify else None
        if out is not None:
            check_output_folder(out, overwrite)

        folder = _fetch(parsed, revision, sha256, force, keep_pickle, quiet)
        if verify:
            from epigraf_tools.checkpoints.loading import load_model_folder

            G = load_model_folder(folder, dev)
            echo(f"Checked: {sum(p.numel() for p in G.parameters()) / 1e6:.2f} M parameters on {dev}", quiet)
        if out is not None:
            from epigraf_tools.atomic import atomic_dir

            with atomic_dir(out) as tmp:
                for name in COPIED_FILES:
                    if (folder / name).is_file():
                        shutil.copyfile(folder / name, tmp / name)  # follows cache links to the blobs
            echo(f"Copied to {out}", quiet)
        echo(str(folder), quiet)


def _fetch(parsed, revision, sha256, force, keep_pickle, quiet) -> Path:
    from epigraf_tools.checkpoints.hub import download_model
    from epigraf_tools.checkpoints.transfer_progress import transfer_progress
    from epigraf_tools.checkpoints.zoo import resolve_zoo_model

    if parsed.kind == "zoo":
        with transfer_progress(not quiet) as report:
            return resolve_zoo_model(
                parsed.value, progress=report, hub_progress=not quiet, keep_pickle=keep_pickle, force=force
            )
    sha = {"model.safetensors": sha256} if sha256 else None
    return download_model(
        parsed.value, revision=revision or parsed.revision, sha256=sha, force=force, progress=not quiet
    )

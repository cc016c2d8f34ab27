"""``epigraf demo``: serve the browser demo (Gradio, optional extra ``[demo]``) on this machine."""

from __future__ import annotations

import typer

from .common import DebugOption, DeviceOption, ModelOption, QuietOption, echo, flag_names, handle_errors

HELP = """Serve the interactive demo in the browser: seed, truncation, class and camera sliders; the image \
with depth, normals and alpha; an orbit video; and "extract mesh" with an interactive 3D view and the \
GLB, MRC and ChimeraX .cxc to download.

Needs the optional extra: pip install 'epigraf-tools\\[demo]'. The server listens on 127.0.0.1 only \
(this machine) unless --host says otherwise, and makes no public link unless --share. Stop it with Ctrl-C.

[bold]Examples[/bold]

  epigraf demo

  epigraf demo --model ffhq512 --port 7860 --device cuda

  epigraf demo --host 0.0.0.0 --port 8080 --models default,ffhq512
"""


@handle_errors
def demo_cmd(
    model: str = ModelOption,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(None, "--port", help="Port (default: the first free one from 7860)."),
    share: bool = typer.Option(False, "--share/--no-share", help="Also make a public gradio.live link."),
    models: str = typer.Option(
        None, "--models", help="Only these models may be chosen in the page (comma-separated specs). Default: any."
    ),
    device: str = DeviceOption,
    quiet: bool = QuietOption,
    debug: bool = DebugOption,
) -> None:
    from epigraf_tools.demo import LOCAL_HOSTS, check_address, require_gradio, run_demo
    from epigraf_tools.errors import EpigrafError

    require_gradio()  # the install hint before any model is loaded
    with flag_names({"port": "--port", "host": "--host"}):
        check_address(host, port)
    if host not in LOCAL_HOSTS:
        typer.echo(f"Warning: listening on {host}: anyone who can reach this machine can use the demo", err=True)
    echo("Starting the demo (Ctrl-C stops it) ...", quiet)
    allowed = None if models is None else [m.strip() for m in models.split(",") if m.strip()]
    if allowed is not None and not allowed:
        raise EpigrafError("--models is empty: give comma-separated model specs, or leave it out to allow any")
    run_demo(model, host=host, port=port, share=share, device=device, quiet=quiet, models=allowed)

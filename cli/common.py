"""Options and error handling shared by every command (the contract in shared/CLI.md)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from epigraf_tools.errors import EpigrafError

F = TypeVar("F", bound=Callable[..., Any])

MODEL_HELP = "Model: zoo name, local folder, official .pkl, or Hub repo id[@revision]. Default: the embedded model."
DEVICE_HELP = "Device: auto (cuda, then mps, then cpu), cpu, cuda or mps."

ModelOption = typer.Option(None, "--model", "-m", help=MODEL_HELP)
DeviceOption = typer.Option("auto", "--device", help=DEVICE_HELP)
QuietOption = typer.Option(False, "--quiet", "-q", help="Print nothing but errors.")
DebugOption = typer.Option(False, "--debug", help="Show full tracebacks on errors.")


def fail(message: str, code: int = 2) -> None:
    """Print one error line to stderr and exit (2: bad argument or input)."""
    typer.echo(f"Error: {message}", err=True)
    raise typer.Exit(code)


def handle_errors(func: F) -> F:
    """Turn user errors into one line + exit 2, and anything else into one line + exit 1.

    With ``--debug`` (or EPIGRAF_DEBUG=1) the traceback is shown instead.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("EPIGRAF_DEBUG") == "1"
        try:
            return func(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except EpigrafError as exc:
            if debug:
                raise
            fail(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__, 2)
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - last-resort guard: never a traceback without --debug
            if debug:
                raise
            msg = str(exc).splitlines()[0] if str(exc) else ""
            typer.echo(f"Error: {exc.__class__.__name__}: {msg} (run with --debug for details)", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def echo(message: str, quiet: bool = False) -> None:
    if not quiet:
        typer.echo(message, file=sys.stdout)

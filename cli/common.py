"""Options and error handling shared by every command (the contract in shared/CLI.md)."""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterator
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


class Terminated(KeyboardInterrupt):
    """Raised in the main thread on SIGTERM, so that cleanup runs exactly as after Ctrl-C."""


SIGTERM_EXIT = 128 + signal.SIGTERM  # 143, what shells report for a process ended by SIGTERM
SIGINT_EXIT = 128 + signal.SIGINT  # 130


_state: dict[str, bool] = {"terminated": False, "reported": False}


REDELIVER_S = 0.5  # how soon an interrupt that nothing has reported yet is raised again


def _on_sigterm(signum: int, _frame: Any) -> None:
    if _state["reported"] or isinstance(sys.exc_info()[1], KeyboardInterrupt):
        # The interrupt's cleanup is under way (the handler runs inside the finally, __exit__ or except
        # that handles it) or done: a second SIGTERM must not cut it short. A scheduler that insists
        # sends SIGKILL, and the next run then removes the leftovers (epigraf_tools.atomic).
        if not _state["reported"]:
            _watch_delivery()
        return
    _state["terminated"] = True
    _watch_delivery()
    raise Terminated()


def _watch_delivery() -> None:
    """Raise the interrupt again in REDELIVER_S unless it has been reported by then.

    ``Terminated`` can be lost on its way: a C extension that checks for signals and then clears the
    error, or a library's ``except BaseException: pass``, and the run would go on to the end (seen once
    in a CI run of test_sigterm_during_video_grid_removes_its_scratch_folder: exit 0 after every
    frame). Until ``interrupted_exit`` reports it, a timer sends SIGTERM to the main thread again; the
    handler raises it once more unless it finds that interrupt's cleanup running.
    """

    def check() -> None:
        if not _state["reported"]:
            _thread.interrupt_main(signal.SIGTERM)

    timer = threading.Timer(REDELIVER_S, check)
    timer.daemon = True
    timer.start()


def _redeliver_lost_interrupts(unraisable: Any) -> None:
    """``sys.unraisablehook``: an interrupt raised inside a finaliser is re-sent, not lost.

    A signal handler runs wherever the main thread is, and when that is a ``__del__`` or a weakref
    callback (garbage collection runs them at arbitrary points), Python prints the exception and drops
    it, and the run would go on to the end. The interrupt is sent again to the main thread instead,
    where it is raised as soon as the finaliser returns. Other unraisable errors go to the default hook.
    """
    exc = unraisable.exc_value
    if not isinstance(exc, KeyboardInterrupt):
        _default_unraisablehook(unraisable)
        return
    signum = signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT
    # From another thread, a moment later: called here, the handler would run inside this hook and be
    # dropped again. Should it land in a finaliser once more, this hook sends it again.
    threading.Timer(0.01, _thread.interrupt_main, args=(signum,)).start()


_default_unraisablehook = sys.unraisablehook


def install_signal_handlers() -> None:
    """Turn SIGTERM (kill, timeout, job schedulers, torchrun stopping its workers) into ``Terminated``.

    ``finally:`` blocks and the atomic writers' context managers then remove temporary files, and
    ``handle_errors`` exits 143. An interrupt that lands inside a finaliser is re-raised after it
    (``_redeliver_lost_interrupts``). Only the main thread can install handlers; elsewhere this does nothing.
    """
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (e.g. the CLI called from a worker thread)
        return
    sys.unraisablehook = _redeliver_lost_interrupts


def interrupted_exit(exc: KeyboardInterrupt) -> typer.Exit:
    """One line on stderr, and the exit code a shell expects: 143 after SIGTERM, 130 after Ctrl-C."""
    _state["reported"] = True
    terminated = isinstance(exc, Terminated)
    typer.echo("Terminated." if terminated else "Interrupted.", err=True)
    return typer.Exit(SIGTERM_EXIT if terminated else SIGINT_EXIT)


def unreported_interrupt() -> KeyboardInterrupt | None:
    """The interrupt that typer turned into exit 130 outside any command (None if it was reported)."""
    if _state["reported"]:
        return None
    return Terminated() if _state["terminated"] else KeyboardInterrupt()


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
            fail(with_flag(str(exc).splitlines()[0]) if str(exc) else exc.__class__.__name__, 2)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM (Terminated) once main() installed the handler
            raise interrupted_exit(exc) from None
        except Exception as exc:  # noqa: BLE001 - last-resort guard: never a traceback without --debug
            if debug:
                raise
            msg = str(exc).splitlines()[0] if str(exc) else ""
            typer.echo(f"Error: {exc.__class__.__name__}: {msg} (run with --debug for details)", err=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


# Library errors name the parameter at the start of their message ("seeds is empty ..."), and write a
# fix as a keyword argument ("pass force=True", "pass spec=FILE.pkl"); the CLI shows the flag instead
# ("--seeds is empty", "pass --force", "pass --model FILE.pkl"). Per-command extras go through ``flag_names``.
FLAGS: dict[str, str] = {
    "seeds": "--seeds",
    "frames": "--frames",
    "space": "--space",
    "device": "--device",
    "value": "--value",
    "method": "--method",
    "level": "--level",
    "max_faces": "--faces",
    "smooth": "--smooth",
    "look_at": "--look-at",
}
KEYWORD_FLAGS: dict[str, str] = {
    "force": "--force",
    "overwrite": "--overwrite",
    "degrees": "--degrees",
    "spec": "--model",
    "data": "--data",
    "inception": "--inception",
    "resume": "--resume",
    "out": "--out",
}
_KEYWORD_RE = re.compile(r"\b(" + "|".join(KEYWORD_FLAGS) + r")=(True\b)?")


def _keyword_pattern(keywords: dict[str, str]) -> re.Pattern[str]:
    return _KEYWORD_RE if keywords is KEYWORD_FLAGS else re.compile(r"\b(" + "|".join(keywords) + r")=(True\b)?")


def with_flag(message: str, flags: dict[str, str] = FLAGS, keywords: dict[str, str] = KEYWORD_FLAGS) -> str:
    """``message`` with its leading parameter name (or 'cannot write to <name>') replaced by its flag,
    and each keyword fix (``force=True``, ``spec=FILE``) by the flag that sets it (``keywords``: a
    command's own keyword -> flag table, for parameters no other command has)."""
    message = _keyword_pattern(keywords).sub(lambda m: keywords[m[1]] + ("" if m[2] else " "), message)
    for param, flag in flags.items():
        for prefix in (f"{param} ", f"{param}:", f"cannot write to {param} "):
            if message.startswith(prefix):
                return message.replace(param, flag, 1)
    return message


@contextlib.contextmanager
def flag_names(flags: dict[str, str], keywords: dict[str, str] = KEYWORD_FLAGS) -> Iterator[None]:
    """Inside: library errors that name one of ``flags``' parameters (or write one of ``keywords`` as
    a fix) name its command-line flag instead."""
    try:
        yield
    except EpigrafError as exc:
        fixed = with_flag(str(exc), flags, keywords)
        if fixed == str(exc):
            raise
        raise EpigrafError(fixed) from None


def echo(message: str, quiet: bool = False) -> None:
    if not quiet:
        typer.echo(message, file=sys.stdout)

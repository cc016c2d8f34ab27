"""The ``epigraf`` command: a typer app whose commands are thin wrappers over ``epigraf_tools``.

Each command lives in the module named after it (``epigraf export-mesh`` in ``export_mesh.py``,
``epigraf dataset synth`` in ``dataset_synth.py``), which defines the command function and its ``HELP``
(and optionally ``EPILOG``). ``COMMANDS`` below names them all, in one place: it is the whole
command set, so ``epigraf --help`` shows exactly what exists. A command's module is imported only
when that command runs (``LazyGroup``).
"""

from __future__ import annotations

import ast
import atexit
import gc
import importlib
import os
import sys
import threading
from functools import cache
from pathlib import Path

import typer
from typer.core import TyperGroup

# command (group and name) -> "module:function" under epigraf_tools.cli
COMMANDS: dict[str, str] = {
    "train": "train:train_cmd",
    "dataset info": "dataset:info_cmd",
    "dataset synth": "dataset_synth:synth_command",
    "dataset import": "dataset_import:import_cmd",
    "fid": "fid:fid_cmd",
    "sample": "sample:sample_cmd",
    "video": "video:video_cmd",
    "interpolate": "interpolate:interpolate_cmd",
    "models": "models:models_cmd",
    "download": "download:download_cmd",
    "convert": "convert:convert_cmd",
    "export-volume": "export_volume:export_volume_cmd",
    "export-mesh": "export_mesh:export_mesh_cmd",
    "compare-geometry": "compare_geometry:compare_geometry_cmd",
    "demo": "demo:demo_cmd",
    "invert": "invert:invert_cmd",
}

_CLI_DIR = Path(__file__).resolve().parent


def _commands_of(group: str) -> dict[str, str]:
    """The commands of one group (``""`` for the top level), name -> "module:function", in listing order."""
    found = {}
    for command, target in COMMANDS.items():
        parent, _, name = command.rpartition(" ")
        if parent == group:
            found[name] = target
    return found


def source_help(module_name: str) -> str | None:
    """A command module's ``HELP`` string read from its source, without importing the module.

    The help listing needs only this text, and importing every command module costs what the
    commands import (torch, the training package): about 2 s before ``epigraf --help`` could print.
    None when ``HELP`` is not a plain string literal (then the module is imported).
    """
    try:
        tree = ast.parse((_CLI_DIR / f"{module_name}.py").read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "HELP" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                return None
            return value if isinstance(value, str) else None
    return None


@cache
def load_command(target: str, name: str) -> typer.core.TyperCommand:
    """The real click command of ``target`` ("module:function"), built by typer from the function."""
    module_name, function = target.split(":")
    module = importlib.import_module(f"epigraf_tools.cli.{module_name}")
    single = typer.Typer(rich_markup_mode="rich", add_completion=False)
    single.command(name, help=module.HELP, epilog=getattr(module, "EPILOG", None))(getattr(module, function))
    command = typer.main.get_command(single)
    _end_start_up()
    return command


# The console script's start-up: the cyclic collector is off while a command's modules import (torch's
# import ran three full collections of a growing heap, about 0.25 s of 1.5 s measured). What the imports
# built then lives until exit, so it is frozen (never scanned again) and collection resumes for the work.
_start_up = {"collector_paused": False}


def _pause_collector_for_start_up() -> None:
    gc.disable()
    _start_up["collector_paused"] = True


def _end_start_up() -> None:
    if _start_up["collector_paused"]:
        _start_up["collector_paused"] = False
        gc.freeze()
        gc.enable()


class LazyGroup(TyperGroup):
    """A command group that imports a command's module only when that command runs or shows its help.

    Listing the group (``epigraf --help``) uses each module's ``HELP`` read from source
    (``source_help``), so ``epigraf --help`` starts in a fraction of a second instead of importing
    torch and every command's dependencies first.
    """

    group = ""

    def list_commands(self, ctx):  # noqa: ANN001, ANN201 - click's signature
        return [*super().list_commands(ctx), *_commands_of(self.group)]

    def get_command(self, ctx, cmd_name):  # noqa: ANN001, ANN201 - click's signature
        target = _commands_of(self.group).get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        listing_only = ctx.resilient_parsing or getattr(ctx, "_epigraf_listing", False)
        help_text = source_help(target.split(":")[0]) if listing_only else None
        if help_text is not None:
            return typer.core.TyperCommand(cmd_name, help=help_text, callback=None)
        return load_command(target, cmd_name)

    def format_help(self, ctx, formatter):  # noqa: ANN001, ANN201 - click's signature
        ctx._epigraf_listing = True  # only the listing: each command's help line, not its options
        try:
            return super().format_help(ctx, formatter)
        finally:
            ctx._epigraf_listing = False


class DatasetGroup(LazyGroup):
    group = "dataset"


app = typer.Typer(
    cls=LazyGroup,
    name="epigraf",
    help="EpiGRAF 3D GAN toolkit: samples, videos, interpolations, density volumes and meshes.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)

dataset_app = typer.Typer(
    cls=DatasetGroup,
    name="dataset",
    help="Dataset tools: inspect, import or synthesise a training dataset.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(dataset_app, name="dataset")


def _plain_help_types() -> None:
    """Show click's plain metavars in --help (INTEGER, TEXT, PATH; nothing for flags).

    Recent typer releases print a Python type tag (``<bool>``, ``<str>``) beside every option,
    flags included, which reads as noise in every command's help. One hook here covers every
    command; a typer without the hook is left alone.
    """
    try:
        from typer.core import TyperArgument, TyperOption
    except ImportError:  # pragma: no cover
        return

    plain = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH", "bool": ""}

    def wrap(original):  # noqa: ANN001, ANN202 - typer's own signature
        def display_type_rich(self, ctx):  # noqa: ANN001, ANN202
            if getattr(self, "metavar", None) is not None:
                return self.metavar
            if getattr(self, "is_flag", False) or getattr(self, "count", False):
                return None
            shown = original(self, ctx)
            if not isinstance(shown, str) or not (shown.startswith("<") and ">" in shown):
                return shown
            label, rest = shown[1:].split(">", 1)
            label = plain.get(label, label.upper())
            return f"{label}{rest}" if label else None

        return display_type_rich

    for cls in (TyperOption, TyperArgument):
        if hasattr(cls, "display_type_rich"):
            cls.display_type_rich = wrap(cls.display_type_rich)


_plain_help_types()


def version_callback(value: bool) -> None:
    """``epigraf --version``: print ``epigraf-tools <version>`` and stop."""
    if value:
        from epigraf_tools import __version__

        typer.echo(f"epigraf-tools {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=version_callback, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """EpiGRAF 3D GAN toolkit: samples, videos, interpolations, density volumes and meshes."""


def main() -> None:
    """Console-script entry point.

    Usage errors (unknown option or command, a value of the wrong type, a missing argument) are
    reported on one line with exit code 2, like every other bad input, instead of click's usage box.
    """
    try:  # typer >= 0.16 vendors click; older versions use click itself
        from typer._click import exceptions as click_exc
    except ImportError:  # pragma: no cover
        from click import exceptions as click_exc

    from .common import SIGINT_EXIT, install_signal_handlers, interrupted_exit, unreported_interrupt

    install_signal_handlers()
    try:
        result = app(prog_name="epigraf", standalone_mode=False)
    except click_exc.NoArgsIsHelpError as exc:
        print(exc.format_message())
        sys.exit(0)
    except click_exc.UsageError as exc:
        where = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        print(f"Error: {exc.format_message()}{where}", file=sys.stderr)
        sys.exit(2)
    except click_exc.ClickException as exc:
        print(f"Error: {exc.format_message()}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("Aborted.", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt as exc:
        sys.exit(interrupted_exit(exc).exit_code)
    except BrokenPipeError:  # e.g. `epigraf --help | head`: the reader left; nothing to report
        sys.stderr.close()
        sys.exit(0)
    if result == SIGINT_EXIT and (exc := unreported_interrupt()) is not None:  # typer caught it outside a command
        result = interrupted_exit(exc).exit_code
    sys.exit(result if isinstance(result, int) else 0)


def console_main() -> None:
    """The ``epigraf`` console script: ``main``, then an exit that skips the interpreter's teardown.

    With torch loaded the teardown (a full collection of some 175k objects, then torch deregistering its
    Python operator kernels one by one) took 0.5-0.75 s after the work was done (export-volume 512^3 on
    2 cores, measured). A one-shot process gains nothing from it: the atexit handlers still run, the
    standard streams are flushed, and the OS takes the memory back. Should a thread other than this one
    still be alive, the normal exit joins it as usual. Tests call ``main`` and keep their interpreter.
    """
    _pause_collector_for_start_up()
    try:
        main()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if threading.active_count() > 1:
        sys.exit(code)
    atexit._run_exitfuncs()
    if code is not None and not isinstance(code, int):  # sys.exit("message"): printed, status 1
        print(code, file=sys.stderr)
        code = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed stream or a reader that left: nothing more to deliver
            pass
    os._exit(code or 0)


if __name__ == "__main__":  # pragma: no cover
    console_main()

"""cli/common.py: the error contract every command shares (exit 2 for user errors, 1 otherwise, 130/143 on
interrupts), --debug, quiet echo, and parameter names shown as the flags that set them."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

import epigraf_tools.cli.common as common
from epigraf_tools.camera import Camera, parse_look_at
from epigraf_tools.cli.app import app
from epigraf_tools.cli.common import (
    SIGINT_EXIT,
    SIGTERM_EXIT,
    Terminated,
    echo,
    fail,
    flag_names,
    handle_errors,
    interrupted_exit,
    with_flag,
)
from epigraf_tools.errors import EpigrafError
from epigraf_tools.seeds import parse_seeds
from epigraf_tools.volume import make_volume_grid


def _app(exc: BaseException) -> typer.Typer:
    """A one-command app whose command raises ``exc`` under ``handle_errors``."""
    app = typer.Typer()

    @app.command()
    @handle_errors
    def run(debug: bool = typer.Option(False, "--debug")) -> None:
        raise exc

    return app


@pytest.fixture(autouse=True)
def _restore_interrupt_state(monkeypatch):
    """interrupted_exit records that it reported; keep that from leaking into other tests."""
    for key, value in list(common._state.items()):
        monkeypatch.setitem(common._state, key, value)


@pytest.fixture()
def invoke(monkeypatch):
    monkeypatch.delenv("EPIGRAF_DEBUG", raising=False)

    def run(exc: BaseException, *args: str):
        return CliRunner().invoke(_app(exc), list(args))

    return run


def test_exit_codes():
    assert (SIGINT_EXIT, SIGTERM_EXIT) == (130, 143)


def test_a_user_error_is_its_first_line_and_exit_2(invoke):
    res = invoke(EpigrafError("bad --seeds '5-2'\nmore detail"))
    assert res.exit_code == 2 and res.stderr == "Error: bad --seeds '5-2'\n" and res.stdout == ""


def test_an_empty_user_error_names_its_class(invoke):
    res = invoke(EpigrafError())
    assert res.exit_code == 2 and res.stderr.strip() == "Error: EpigrafError"


def test_anything_else_is_one_line_and_exit_1(invoke):
    res = invoke(RuntimeError("out of cheese\nstack"))
    assert res.exit_code == 1
    assert res.stderr.strip() == "Error: RuntimeError: out of cheese (run with --debug for details)"
    assert "Traceback" not in res.output


def test_debug_shows_the_exception(invoke, monkeypatch):
    res = invoke(RuntimeError("boom"), "--debug")
    assert res.exit_code == 1 and isinstance(res.exception, RuntimeError)
    monkeypatch.setenv("EPIGRAF_DEBUG", "1")
    res = invoke(EpigrafError("bad"))
    assert isinstance(res.exception, EpigrafError)


@pytest.mark.parametrize(
    "exc, code, line", [(KeyboardInterrupt(), 130, "Interrupted."), (Terminated(), 143, "Terminated.")]
)
def test_interrupts_are_one_line_and_the_shell_exit_code(invoke, exc, code, line):
    res = invoke(exc)
    assert res.exit_code == code and res.stderr.strip() == line


def test_interrupted_exit_and_fail(capsys):
    assert interrupted_exit(Terminated()).exit_code == 143
    assert interrupted_exit(KeyboardInterrupt()).exit_code == 130
    with pytest.raises(typer.Exit) as info:
        fail("no model")
    assert info.value.exit_code == 2
    assert capsys.readouterr().err == "Terminated.\nInterrupted.\nError: no model\n"


def test_echo_respects_quiet(capsys):
    echo("hello")
    echo("hidden", quiet=True)
    assert capsys.readouterr() == ("hello\n", "")


def test_a_leading_parameter_name_becomes_its_flag():
    assert with_flag("seeds is empty; give seeds like '0-3,7'") == "--seeds is empty; give seeds like '0-3,7'"
    assert with_flag("max_faces must be at least 4, got 2") == "--faces must be at least 4, got 2"
    assert with_flag("bad seed 'x' in seeds 'x'") == "bad seed 'x' in seeds 'x'"  # only the leading name
    assert with_flag("cannot write to output folder o: denied", {"output folder": "--out"}) == (
        "cannot write to --out o: denied"
    )
    with pytest.raises(EpigrafError, match="^--sha256 must be"), flag_names({"sha256": "--sha256"}):
        raise EpigrafError("sha256 must be 64 hexadecimal digits")


def test_the_library_names_the_parameter_and_the_cli_the_flag():
    with pytest.raises(EpigrafError) as info:
        parse_seeds(" ")
    assert str(info.value).startswith("seeds is empty") and "--" not in str(info.value)
    result = CliRunner().invoke(app, ["sample", "--seeds", " "])
    assert result.exit_code == 2 and result.stderr.strip().startswith("Error: --seeds is empty"), result.output


def test_a_keyword_fix_becomes_its_flag():
    assert with_flag("resolution 3000 exceeds 2048; pass force=True if you mean it") == (
        "resolution 3000 exceeds 2048; pass --force if you mean it"
    )
    taken = with_flag("o already holds a model; pass overwrite=True to replace it")
    assert taken.endswith("pass --overwrite to replace it")
    assert with_flag("not installed; pass spec=NAME|FILE.pkl") == "not installed; pass --model NAME|FILE.pkl"
    assert with_flag("resume=latest needs the run folder (out=RUN_DIR)") == (
        "--resume latest needs the run folder (--out RUN_DIR)"
    )
    assert with_flag("layout=x and metadata=y") == "layout=x and metadata=y"  # whole names only
    assert with_flag("look_at must be three numbers") == "--look-at must be three numbers"


@pytest.mark.parametrize(
    "call",
    [
        lambda: Camera(yaw=0.0, pitch=80.0),
        lambda: Camera(yaw=90.0, pitch=1.0),
        lambda: parse_look_at("1,2"),
        lambda: make_volume_grid(0.5, resolution=5000),
    ],
)
def test_library_errors_name_no_flags(call):
    """The toolkit names its parameters (degrees=True, look_at, force=True); only the CLI knows flags."""
    with pytest.raises(EpigrafError) as info:
        call()
    assert "--" not in str(info.value)


def test_cli_still_names_the_flags():
    pitch = CliRunner().invoke(app, ["sample", "--seeds", "0", "--pitch", "80"])
    assert pitch.exit_code == 2 and "pass --degrees" in pitch.stderr, pitch.output
    look = CliRunner().invoke(app, ["sample", "--seeds", "0", "--look-at", "1,2"])
    assert look.exit_code == 2 and "Error: --look-at must be three numbers" in look.stderr, look.output

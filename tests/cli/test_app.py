"""The ``epigraf`` entry point: command set and one-line usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from epigraf_tools.cli.app import COMMANDS, app, source_help

CONTRACT_COMMANDS = {
    "sample",
    "video",
    "interpolate",
    "export-volume",
    "export-mesh",
    "models",
    "download",
    "convert",
    "train",
    "dataset",
}


def run(*args: str) -> subprocess.CompletedProcess:
    code = "from epigraf_tools.cli.app import main; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_every_contract_command_is_registered():
    import typer.main

    group = typer.main.get_command(app)
    ctx = group.make_context("epigraf", ["--help"], resilient_parsing=True)
    names = set(group.list_commands(ctx))
    assert CONTRACT_COMMANDS <= names
    for name in names - {"dataset"}:
        assert group.get_command(ctx, name) is not None, name


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_the_listing_shows_each_command_s_own_help(command):
    """``epigraf --help`` reads HELP from source; it must be the text the command itself shows."""
    import importlib

    module_name = COMMANDS[command].split(":")[0]
    module = importlib.import_module(f"epigraf_tools.cli.{module_name}")
    assert source_help(module_name) == module.HELP


def test_help_lists_every_command_without_importing_torch():
    code = (
        "import sys\n"
        "from epigraf_tools.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print('rc', exc.code, 'torch' in sys.modules, file=sys.stderr)\n"
    )
    res = subprocess.run([sys.executable, "-c", code, "--help"], capture_output=True, text=True, timeout=120)
    assert res.stderr.strip().endswith("rc 0 False"), res.stderr
    for name in CONTRACT_COMMANDS | {"invert", "demo", "compare-geometry"}:
        assert f" {name} " in res.stdout, name
    sub = subprocess.run([sys.executable, "-c", code, "dataset", "--help"], capture_output=True, text=True, timeout=120)
    assert sub.stderr.strip().endswith("rc 0 False"), sub.stderr
    assert " import " in sub.stdout and " synth " in sub.stdout


def test_a_command_s_own_help_shows_its_options():
    res = run("sample", "--help")
    assert res.returncode == 0 and "--truncation" in res.stdout


@pytest.mark.parametrize(
    "args",
    [("nosuch",), ("sample", "--resolution", "abc"), ("dataset", "synth"), ("sample", "--no-such-option")],
)
def test_usage_errors_are_one_line_with_exit_2(args):
    res = run(*args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    assert "Traceback" not in res.stderr


def run_console(prelude: str, *args: str) -> subprocess.CompletedProcess:
    """The console script's entry (``console_main``, which ends the process itself) after ``prelude``."""
    code = f"{prelude}\nfrom epigraf_tools.cli.app import console_main\nconsole_main()\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)


def test_the_console_script_keeps_exit_codes_output_and_atexit_handlers():
    """It skips the interpreter's teardown, not what a process owes its caller."""
    atexit_hook = "import atexit\natexit.register(lambda: print('atexit ran'))"
    ok = run_console(atexit_hook, "--help")
    assert ok.returncode == 0
    assert "export-volume" in ok.stdout  # buffered output to a pipe still arrives
    assert ok.stdout.rstrip().endswith("atexit ran")

    bad = run_console(atexit_hook, "export-volume", "--model", "/nonexistent/model", "--seeds", "0")
    assert bad.returncode == 2
    assert len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr
    assert "atexit ran" in bad.stdout


def test_the_console_script_waits_for_a_thread_still_running():
    """A live non-daemon thread (say, a library's writer) is joined by the normal exit, as without it."""
    late = (
        "import threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(0.5), print('thread finished', flush=True))).start()"
    )
    proc = run_console(late, "--help")
    assert proc.returncode == 0
    assert "thread finished" in proc.stdout


def test_the_console_script_reports_a_message_exit_like_python():
    """sys.exit('text') prints the text on stderr and exits 1, as the interpreter's own exit does."""
    prelude = "import sys\nimport epigraf_tools.cli.app as app\napp.main = lambda: sys.exit('stopped: no model')"
    proc = subprocess.run(
        [sys.executable, "-c", f"{prelude}\napp.console_main()\n"], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == "stopped: no model"


def test_the_console_script_collects_again_once_the_command_is_imported():
    """The collector pauses only for the imports; what they built is frozen, the work is collected as usual."""
    report = (
        "import atexit, gc\natexit.register(lambda: print('collector', gc.isenabled(), gc.get_freeze_count() > 10_000))"
    )
    proc = run_console(report, "export-volume", "--model", "/nonexistent/model", "--seeds", "0")
    assert proc.returncode == 2
    assert "collector True True" in proc.stdout

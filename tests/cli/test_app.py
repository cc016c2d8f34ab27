"""The ``epigraf`` entry point: command set and one-line usage errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from epigraf_tools.cli.app import app

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

    names = set(typer.main.get_command(app).commands)
    assert CONTRACT_COMMANDS <= names


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

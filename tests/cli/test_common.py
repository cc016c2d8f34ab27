"""cli/common.py: library errors name parameters; the CLI shows the flag that set them."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from epigraf_tools.cli.app import app
from epigraf_tools.cli.common import flag_names, with_flag
from epigraf_tools.errors import EpigrafError
from epigraf_tools.seeds import parse_seeds

runner = CliRunner()


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
    result = runner.invoke(app, ["sample", "--seeds", " "])
    assert result.exit_code == 2 and result.stderr.strip().startswith("Error: --seeds is empty"), result.output

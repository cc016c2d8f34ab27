"""cli/demo.py: `epigraf demo` refuses what it cannot serve with one line and exit 2 (the browser test serves it)."""

from __future__ import annotations

import sys

import pytest


def test_without_gradio_it_says_what_to_install(cli, one_error_line, monkeypatch):
    monkeypatch.setitem(sys.modules, "gradio", None)
    one_error_line(cli(["demo"]), "pip install 'epigraf-tools[demo]'")


def test_a_bad_port_is_refused_before_anything_loads(cli, one_error_line):
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    one_error_line(cli(["demo", "--port", "0"]), "--port", "[1, 65535]")


def test_a_bad_model_is_refused_before_serving(cli, one_error_line):
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    one_error_line(cli(["demo", "--model", "/no/such/model", "--quiet"]), "no such model")


def test_a_model_outside_the_allowed_list_is_refused(cli, one_error_line):
    pytest.importorskip("gradio", reason="needs the [demo] extra")
    one_error_line(cli(["demo", "--model", "default", "--models", "ffhq512", "--quiet"]), "serves only", "ffhq512")
    one_error_line(cli(["demo", "--models", " , ", "--quiet"]), "--models is empty")


def test_help_names_the_extra_and_the_safe_defaults(cli):
    result = cli(["demo", "--help"])
    assert result.exit_code == 0
    assert "epigraf-tools[demo]" in result.output and "127.0.0.1" in result.output and "--no-share" in result.output

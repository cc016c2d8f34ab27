"""Scaffolding every CLI test file shares: running the app in-process, the one-line exit-2 check, tiny model folders.

Each of these used to be re-declared at the top of several ``tests/cli/test_*.py`` files; they are fixtures here so
that a change to the contract (say, the error prefix) is made once.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from epigraf_tools.cli.app import app

from support import make_tiny_generator

Invoke = Callable[..., Result]


@pytest.fixture(scope="session")
def cli_runner() -> CliRunner:
    """One runner for the session: it holds no state between invocations."""
    return CliRunner()


@pytest.fixture()
def cli(cli_runner: CliRunner) -> Invoke:
    """``cli([...args], **invoke_kwargs)`` runs ``epigraf ARGS`` in-process; paths may be passed as ``Path``."""

    def invoke(args: list[Any], **kwargs: Any) -> Result:
        return cli_runner.invoke(app, [str(a) for a in args], **kwargs)

    return invoke


def _one_error_line(result: Result, *needles: str, match: str | None = None, stream: str = "stderr") -> str:
    """Assert the CLI contract for bad input (exit 2, one ``Error: ...`` line, no traceback); return the line.

    ``stream`` is where the line is looked for (``"output"`` is stdout and stderr together, so it also proves that
    nothing else was printed); each of ``needles`` must be a substring of the line, and ``match`` a regular
    expression found in it.
    """
    assert result.exit_code == 2, result.output
    text = getattr(result, stream)
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), text
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in lines[0], text
    if match is not None:
        assert re.search(match, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="session")
def one_error_line() -> Callable[..., str]:
    """The exit-2 contract check: ``one_error_line(result, *needles, match=None, stream="stderr") -> line``."""
    return _one_error_line


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``tiny_model_dir(seed=0, **config_overrides)``: a saved tiny random model folder, made once per session.

    Tests only read these folders; a test that changes a model folder must make its own.
    """
    made: dict[str, Path] = {}

    def make(seed: int = 0, **overrides: Any) -> Path:
        key = repr((seed, sorted(overrides.items())))
        if key not in made:
            path = tmp_path_factory.mktemp(f"tiny_model_{seed}") / "tiny"
            make_tiny_generator(seed, **overrides).save_pretrained(path)
            made[key] = path
        return made[key]

    return make


@pytest.fixture(scope="session")
def model_dir(tiny_model_dir: Callable[..., Path]) -> Path:
    """The default tiny unconditional model (seed 0); files that need another seed override this fixture."""
    return tiny_model_dir()


@pytest.fixture(scope="session")
def cond_model_dir(tiny_model_dir: Callable[..., Path]) -> Path:
    """A tiny class-conditional model with named classes cat, dog, fox."""
    return tiny_model_dir(c_dim=3, class_names=["cat", "dog", "fox"])


@pytest.fixture()
def one_thread():
    """One torch thread for the test (tiny training steps are far faster so on shared cores), then restore."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)

"""epigraf_tools/errors.py: the user-error hierarchy the CLI turns into one line and exit 2."""

from __future__ import annotations

from typer.testing import CliRunner

from epigraf_tools.errors import EpigrafError, ModelNotFoundError


def test_model_not_found_is_a_user_error():
    assert issubclass(ModelNotFoundError, EpigrafError) and issubclass(EpigrafError, Exception)
    assert not issubclass(EpigrafError, (ValueError, RuntimeError))  # only deliberate user errors are caught


def test_the_cli_turns_any_epigraf_error_into_its_message_and_exit_2():
    import typer

    from epigraf_tools.cli.common import handle_errors

    app = typer.Typer()

    @app.command()
    @handle_errors
    def boom(debug: bool = False) -> None:
        raise ModelNotFoundError("'nope' is not in the model zoo\nsecond line")

    result = CliRunner().invoke(app, [])
    assert result.exit_code == 2
    assert result.stderr.strip() == "Error: 'nope' is not in the model zoo"

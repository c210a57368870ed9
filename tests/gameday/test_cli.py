"""``gameday`` from the command line."""

from __future__ import annotations

from typer.testing import CliRunner

from gameday.cli import EXIT_PASS, app

runner = CliRunner()


def test_help_lists_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "drill" in result.output


def test_preflight_runs_the_provider_checks_end_to_end() -> None:
    result = runner.invoke(app, ["preflight", "--webhook-wait", "10"])
    assert result.exit_code == EXIT_PASS, result.output
    assert "PRE-FLIGHT PASSED" in result.output
    assert result.output.count("pass") >= 6


def test_preflight_refuses_a_bad_option_without_traceback() -> None:
    result = runner.invoke(app, ["preflight", "--webhook-wait", "0"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output

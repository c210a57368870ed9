"""``gameday alerts export`` and ``check`` from the command line, with the real promtool: the
file a team installs is the one the drill evaluates, checked before it is published, and
every mistake is one line and an exit code, never a traceback."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from gameday.alerts import MetricNames, drill_rules, render_rules
from gameday.cli_alerts import alerts_app

runner = CliRunner()
FIELDS = ", ".join(f.name for f in dataclasses.fields(MetricNames))


def _no_promtool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def test_export_writes_the_real_pace_rules_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(alerts_app, ["export"])
    assert result.exit_code == 0, result.output
    written = tmp_path / "gameday-rules.yml"
    assert written.read_text() == render_rules(drill_rules("real"))
    assert stat.S_IMODE(written.stat().st_mode) == 0o644  # readable by a prometheus user
    assert "wrote 9 rules (real pace) to gameday-rules.yml, validated by promtool" in result.stdout
    assert f"list {written} under rule_files: in prometheus.yml" in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["gameday-rules.yml"]  # nothing staged left


def test_export_to_stdout_prints_only_the_rules(tmp_path: Path) -> None:
    result = runner.invoke(alerts_app, ["export", "--pace", "fast", "--out", "-"])
    assert result.exit_code == 0, result.output
    assert result.stdout == render_rules(drill_rules("fast"))
    assert result.stderr.strip() == "9 rules (fast pace), validated by promtool"


def test_export_maps_a_teams_own_metric_names(tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("requests: http_server_requests_total\nredis_up: cache_backend_up\n")
    out = tmp_path / "rules.yml"
    result = runner.invoke(alerts_app, ["export", "--names", str(names), "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = MetricNames(requests="http_server_requests_total", redis_up="cache_backend_up")
    assert out.read_text() == render_rules(drill_rules("real", expected))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("requets: http_requests_total\n", f"unknown field 'requets'; valid fields: {FIELDS}"),
        ("- requests\n", "must be a mapping such as `requests: http_requests_total`"),
        ("requests: [a, b]\n", "requests must be a non-empty string, got ['a', 'b']"),
        ("requests: {\n", "is not YAML (line 2)"),
    ],
)
def test_a_bad_names_file_is_one_line_and_exit_2(
    content: str, message: str, tmp_path: Path
) -> None:
    names = tmp_path / "names.yaml"
    names.write_text(content)
    out = tmp_path / "rules.yml"
    result = runner.invoke(alerts_app, ["export", "--names", str(names), "--out", str(out)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith(f"--names: {names}")
    assert result.stderr.count("\n") == 1
    assert not out.exists()


def test_names_promtool_refuses_leave_no_file_behind(tmp_path: Path) -> None:
    names = tmp_path / "names.yaml"
    names.write_text("unobserved_routes: '/metrics|(unclosed'\n")
    out = tmp_path / "rules.yml"
    result = runner.invoke(alerts_app, ["export", "--names", str(names), "--out", str(out)])
    assert result.exit_code == 1
    assert "gameday alerts export: promtool refused" in result.stderr
    assert "missing closing )" in result.stderr  # promtool's (Go regexp's) own words
    assert sorted(p.name for p in tmp_path.iterdir()) == ["names.yaml"]


def test_without_promtool_the_rules_are_written_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_promtool(monkeypatch, tmp_path)
    out = tmp_path / "rules.yml"
    result = runner.invoke(alerts_app, ["export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == render_rules(drill_rules("real"))
    warning = "warning: promtool is not installed: apt-get install prometheus; the rules were NOT"
    assert f"{warning} validated" in result.stderr
    assert "not validated" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pace", "slow"], "gameday alerts export: --pace must be real or fast"),
        (["--out", "/no/such/dir/rules.yml"], "--out /no/such/dir/rules.yml: not a file in"),
        (["--names", "/no/such/names.yaml"], "--names: cannot read /no/such/names.yaml: No such"),
    ],
)
def test_bad_options_are_exit_2(args: list[str], message: str) -> None:
    result = runner.invoke(alerts_app, ["export", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_check_accepts_an_exported_file(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(render_rules(drill_rules("fast")))
    result = runner.invoke(alerts_app, ["check", str(rules)])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"{rules}: valid (promtool check rules)"


def test_check_refuses_a_broken_file_in_promtools_words(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n- name: g\n  rules:\n  - alert: Broken\n    expr: rate(up[\n")
    result = runner.invoke(alerts_app, ["check", str(rules)])
    assert result.exit_code == 1
    assert f"promtool refused {rules}" in result.stderr
    assert '"Broken": could not parse expression' in result.stderr


def test_check_without_a_file_or_promtool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = runner.invoke(alerts_app, ["check", str(tmp_path / "nope.yml")])
    assert missing.exit_code == 2
    assert missing.stderr.strip() == f"gameday alerts check: no such file {tmp_path}/nope.yml"
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": []}))
    _no_promtool(monkeypatch, tmp_path)
    cannot = runner.invoke(alerts_app, ["check", str(rules)])
    assert cannot.exit_code == 3
    assert "promtool is not installed: apt-get install prometheus" in cannot.stderr

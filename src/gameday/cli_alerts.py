"""``gameday alerts …``: the drill's alert rules as a file a team installs in its own
Prometheus, and a check of any rules file (parse, call, print, exit code — the work is in
:mod:`gameday.alerts.rules`).

``export`` validates before it publishes: the rules are rendered into a temporary file next
to the destination, checked with promtool, and only then moved into place (or printed), so a
refused file never lands where a Prometheus reload would pick it up. Without promtool the
file is still written, with a warning that nothing checked it.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape

from gameday.alerts import MetricNames, Pace, RulesError, check_rules, drill_rules, render_rules
from gameday.stack.processes import StartError

EXIT_FAIL, EXIT_USAGE, EXIT_CANNOT_RUN = 1, 2, 3
console = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
_PACES: dict[str, Pace] = {"fast": "fast", "real": "real"}
alerts_app = typer.Typer(no_args_is_help=True, help="The drill's Prometheus alert rules.")


def _fail(message: str, code: int) -> typer.Exit:
    err.print(escape(message))
    return typer.Exit(code)


def load_names(path: Path) -> MetricNames:
    """``MetricNames`` with the fields a YAML mapping overrides; a one-line error naming the
    file and the field otherwise (a silently ignored typo would make a rule that never fires)."""
    fields = [f.name for f in dataclasses.fields(MetricNames)]
    try:
        loaded: Any = yaml.safe_load(path.read_text())
    except OSError as error:
        raise _fail(f"--names: cannot read {path}: {error.strerror}", EXIT_USAGE) from None
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or "not valid YAML"
        raise _fail(f"--names: {path} is not YAML{line}: {problem}", EXIT_USAGE) from None
    if loaded is None:
        return MetricNames()
    if not isinstance(loaded, dict):
        raise _fail(f"--names: {path} must be a mapping such as `requests: http_requests_total`;"
                    f" valid fields: {', '.join(fields)}", EXIT_USAGE)  # fmt: skip
    for key, value in loaded.items():
        if key not in fields:
            raise _fail(f"--names: {path}: unknown field {key!r}; valid fields: "
                        f"{', '.join(fields)}", EXIT_USAGE)  # fmt: skip
        if not isinstance(value, str) or not value:
            raise _fail(f"--names: {path}: {key} must be a non-empty string, got {value!r}",
                        EXIT_USAGE)  # fmt: skip
    return MetricNames(**loaded)


def _validated(text: str, directory: Path) -> tuple[Path, bool]:
    """``text`` in a temporary file in ``directory``, checked by promtool: (file, checked).
    A refusal removes the file and exits 1 with promtool's words."""
    try:
        handle, name = tempfile.mkstemp(prefix=".gameday-rules-", suffix=".yml", dir=directory)
    except OSError as error:
        raise _fail(f"gameday alerts export: cannot write in {directory}: {error.strerror}",
                    EXIT_FAIL) from None  # fmt: skip
    staged = Path(name)
    os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide it from a prometheus user
    with os.fdopen(handle, "w") as file:
        file.write(text)
    try:
        check_rules(staged)
    except StartError as missing:
        err.print(f"[yellow]warning:[/] {escape(str(missing))}; the rules were NOT validated")
        return staged, False
    except RulesError as refused:
        staged.unlink(missing_ok=True)
        raise _fail(f"gameday alerts export: {refused}", EXIT_FAIL) from None
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return staged, True


@alerts_app.command("export")
def export(
    pace: Annotated[
        str, typer.Option(help="real (the playbook's windows) or fast (a drill's seconds).")
    ] = "real",
    out: Annotated[str, typer.Option(help="File to write, or - for stdout.")] = "gameday-rules.yml",
    names: Annotated[
        Path | None,
        typer.Option(help="YAML mapping of MetricNames fields to your own metric names."),
    ] = None,
) -> None:
    """Write the drill's alert rules (playbook Part 4.3) for your own Prometheus, checked
    with promtool. Exit codes: 0 written, 1 promtool refused them, 2 bad options."""
    chosen = _PACES.get(pace)
    if chosen is None:
        raise _fail("gameday alerts export: --pace must be real or fast", EXIT_USAGE)
    rules = drill_rules(chosen, load_names(names) if names is not None else MetricNames())
    text = render_rules(rules)
    target = None if out == "-" else Path(out)
    directory = Path(tempfile.gettempdir()) if target is None else target.parent
    if not directory.is_dir() or (target is not None and target.is_dir()):
        raise _fail(f"gameday alerts export: --out {out}: not a file in an existing directory",
                    EXIT_USAGE)  # fmt: skip
    staged, checked = _validated(text, directory)
    verdict = "validated by promtool" if checked else "not validated"
    if target is None:
        staged.unlink(missing_ok=True)
        sys.stdout.write(text)
        err.print(f"{len(rules)} rules ({pace} pace), {verdict}")
        return
    try:
        staged.replace(target)
    except OSError as error:
        staged.unlink(missing_ok=True)
        raise _fail(f"gameday alerts export: cannot write {target}: {error.strerror}",
                    EXIT_FAIL) from None  # fmt: skip
    console.print(f"wrote {len(rules)} rules ({pace} pace) to {escape(str(target))}, {verdict}")
    console.print(f"hint: list {escape(str(target.resolve()))} under rule_files: in "
                  "prometheus.yml, then reload Prometheus (SIGHUP or POST /-/reload)")  # fmt: skip


@alerts_app.command("check")
def check(file: Annotated[Path, typer.Argument(help="A Prometheus rules file.")]) -> None:
    """Check a rules file with promtool. Exit codes: 0 valid, 1 refused (promtool's words),
    2 no such file, 3 promtool is not installed."""
    if not file.is_file():
        raise _fail(f"gameday alerts check: no such file {file}", EXIT_USAGE)
    try:
        check_rules(file)
    except StartError as missing:
        raise _fail(f"gameday alerts check: {missing}", EXIT_CANNOT_RUN) from None
    except RulesError as refused:
        raise _fail(str(refused), EXIT_FAIL) from None
    console.print(f"{escape(str(file))}: valid (promtool check rules)")

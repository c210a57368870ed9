"""``gameday runbook``: the incident runbooks against a live system.

Read-only by default: a run diagnoses, prints findings and the plan, saves the plan and
appends an audit record. ``--apply --plan DIGEST`` applies exactly that plan (see
``gameday.runbooks.engine`` for the rails). Exit codes: 0 nothing wrong (or applied and
verified), 1 problems found (or still there after an apply), 2 bad input, 3 could not run,
5 the apply was refused (drift, a cap, not confirmed).
"""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from gameday.runbooks import security
from gameday.runbooks.catalog import RUNBOOKS
from gameday.runbooks.context import RunbookError, RunbookTarget, Runtime
from gameday.runbooks.engine import (
    Applied,
    Caps,
    Refused,
    Runbook,
    Store,
    apply,
    diagnose,
    diagnosis_record,
    who_am_i,
)
from gameday.runbooks.model import Diagnosis, Plan

EXIT_OK, EXIT_FOUND, EXIT_BAD_INPUT, EXIT_CANNOT_RUN, EXIT_REFUSED = 0, 1, 2, 3, 5
console = Console()
runbook_app = typer.Typer(
    no_args_is_help=True,
    help="Incident runbooks as commands: diagnose (read-only, saves a plan), then "
    "--apply --plan DIGEST. Every run is audited in DIR/audit.jsonl.",
)


@runbook_app.command("list")
def list_runbooks() -> None:
    """The runbooks, their severity and the drill scenario that exercises each."""
    table = Table(title="gameday runbooks")
    for column in ("runbook", "severity", "scenario", "what it does", "apply"):
        table.add_column(column)
    for rb in RUNBOOKS.values():
        table.add_row(
            rb.name,
            rb.severity,
            str(rb.scenario or "—"),
            rb.summary,
            "yes" if rb.apply else "notes only",
        )
    console.print(table)


def _target(stack: str | None, target: Path | None) -> RunbookTarget:
    return RunbookTarget.of_profile(target) if target else RunbookTarget.of_stack(stack)


def _print(found: Diagnosis, plan: Plan) -> None:
    for symptom in found.checked:
        console.print(f"checked: {symptom}")
    for f in found.findings:
        console.print(f"[bold red]finding:[/] {f.what}")
        for item in f.evidence[:10]:
            console.print(f"  {item}")
    for note in found.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print("invariants: " + ", ".join(f"{k} {v}" for k, v in found.invariants.items()))
    if plan.changes:
        table = Table(title=f"plan {plan.digest} ({plan.incident})")
        for column in ("#", "action", "subject", "amount", "why"):
            table.add_column(column)
        for i, c in enumerate(plan.changes, 1):
            amount = f"{c.amount_cents / 100:.2f} {c.currency.upper()}" if c.amount_cents else "—"
            table.add_row(str(i), c.action, c.subject, amount, c.why)
        console.print(table)


def _confirm(yes: bool) -> bool:
    if yes:
        return True
    if not sys.stdin.isatty():
        console.print("[bold red]refused:[/] not on a terminal; pass --yes to apply")
        return False
    return typer.confirm("apply these changes?", default=False)


def _report_applied(result: Applied) -> None:
    for o in result.outcomes:
        mark = "[green]ok[/]" if o.ok else "[bold red]FAILED[/]"
        console.print(f"{mark} {o.change.action} {o.change.subject}: {o.detail}")
    for name, was in result.before.items():
        console.print(f"{name}: {was} → {result.after.invariants.get(name)}")
    console.print(
        "[bold green]verified[/]"
        if result.verified
        else "[bold red]not verified: problems remain (see above)[/]"
    )


def _run(
    rb: Runbook,
    target: RunbookTarget,
    *,
    do_apply: bool,
    plan_digest: str | None,
    incident: str,
    store: Store,
    caps: Caps,
    yes: bool,
    who: str,
    older_than_s: float,
    window_s: float,
    scope: dict[str, Any],
) -> int:
    async def go() -> int:
        rt = Runtime(target, older_than_s=older_than_s, window_s=window_s, scope=scope)
        try:
            if not do_apply:
                found, plan = await diagnose(rb, rt, incident)
                store.save(plan)
                store.audit(diagnosis_record(rb, plan, found, who))
                _print(found, plan)
                if plan.changes:
                    console.print(
                        f"to apply: gameday runbook {rb.name} --apply --plan {plan.digest}"
                    )
                return EXIT_OK if found.healthy else EXIT_FOUND
            approved = store.load(plan_digest or "")

            def confirm(p: Plan) -> bool:
                _print_plan_only(p)
                return _confirm(yes)

            result = await apply(rb, rt, approved, caps=caps, store=store, who=who,
                                 confirm=confirm)  # fmt: skip
            if not approved.changes:
                console.print("nothing to apply: the plan is empty")
            _report_applied(result)
            return EXIT_OK if result.verified else EXIT_FOUND
        finally:
            await rt.close()

    return asyncio.run(go())


def _print_plan_only(plan: Plan) -> None:
    refunds = (
        ", ".join(f"{c / 100:.2f} {cur.upper()}" for cur, c in plan.refunds_by_currency().items())
        or "none"
    )
    console.print(
        f"plan {plan.digest}: {len(plan.changes)} change(s), refunds {refunds}, rows {plan.rows}"
    )


def _source(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an IP address") from None


def _option(name: str, annotation: Any, default: Any) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


# The options every runbook takes.
_COMMON = [
    _option(
        "stack",
        Annotated[str | None, typer.Option(help="A running embedded stack (default: the newest).")],
        None,
    ),
    _option(
        "target",
        Annotated[
            Path | None,
            typer.Option(
                help="A target profile (database, service, provider).", exists=True, dir_okay=False
            ),
        ],
        None,
    ),
    _option(
        "incident",
        Annotated[
            str | None,
            typer.Option(
                help="Incident id; it keys the provider refunds (default: INC-<date>-<runbook>)."
            ),
        ],
        None,
    ),
    _option(
        "do_apply",
        Annotated[bool, typer.Option("--apply", help="Apply the plan given with --plan.")],
        False,
    ),
    _option(
        "plan",
        Annotated[str | None, typer.Option(help="The plan digest a diagnosis printed.")],
        None,
    ),
    _option(
        "yes", Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")], False
    ),
    _option(
        "max_refund",
        Annotated[
            float | None,
            typer.Option(
                min=0,
                help="Refuse the whole plan if it refunds more than this "
                "(currency units, per currency).",
            ),
        ],
        None,
    ),
    _option(
        "max_rows",
        Annotated[
            int | None, typer.Option(min=0, help="Refuse the whole plan past this many rows.")
        ],
        None,
    ),
    _option(
        "who",
        Annotated[str | None, typer.Option(help="Who runs it (audit; default: $USER).")],
        None,
    ),
    _option(
        "older_than",
        Annotated[
            float,
            typer.Option(
                min=0,
                max=86_400,
                help="Seconds past which a runbook acts (db-connections: idle transactions).",
            ),
        ],
        60.0,
    ),
    _option(
        "window",
        Annotated[
            float,
            typer.Option(
                min=0.5,
                max=300,
                help="Seconds between two scrapes of each instance's metrics (error-spike, "
                "slow-responses: rates now, not since start).",
            ),
        ],
        5.0,
    ),
    _option(
        "out",
        Annotated[Path, typer.Option(help="Plans and audit.jsonl go here.")],
        Path("gameday-runbooks"),
    ),
]

# A runbook's own options: they scope its diagnosis, and the plan carries them to the apply.
_SCOPES: dict[str, list[inspect.Parameter]] = {
    "security": [
        _option(
            "source",
            Annotated[
                str | None,
                typer.Option(
                    callback=_source,
                    help="An address: what it asked for; revoke the tokens of every account "
                    "it used.",
                ),
            ],
            None,
        ),
        _option(
            "user",
            Annotated[
                int | None,
                typer.Option(min=1, help="A user id: where it was used from; revoke its tokens."),
            ],
            None,
        ),
        _option(
            "since_s",
            Annotated[
                float,
                typer.Option(
                    "--since", min=1, max=30 * 86_400, help="Look back this many seconds."
                ),
            ],
            security.DEFAULT_SINCE_S,
        ),
        _option(
            "lock",
            Annotated[
                bool,
                typer.Option(
                    "--lock",
                    help="Lock the accounts as well: their logins are refused until "
                    "unlocked (for a leaked password).",
                ),
            ],
            False,
        ),
    ],
    "payment-anomaly": [
        _option(
            "freeze",
            Annotated[
                bool,
                typer.Option(
                    "--freeze-checkout",
                    help="Plan the freeze of checkout (new holds and payments get 503) "
                    "before the refunds.",
                ),
            ],
            False,
        ),
        _option(
            "reopen",
            Annotated[
                bool,
                typer.Option(
                    "--reopen-checkout",
                    help="Plan reopening checkout, once no duplicate charge is left to refund.",
                ),
            ],
            False,
        ),
    ],
}


def _invoke(rb: Runbook, given: dict[str, Any], scope: dict[str, Any]) -> None:
    do_apply, plan = given["do_apply"], given["plan"]
    if do_apply != (plan is not None):
        raise typer.BadParameter("--apply and --plan go together", param_hint="--plan")
    if do_apply and any(v for k, v in scope.items() if k != "since_s"):
        raise typer.BadParameter(
            "the plan carries the diagnosis's own options; give only --apply --plan",
            param_hint="--plan",
        )
    if scope.get("freeze") and scope.get("reopen"):
        raise typer.BadParameter("choose one", param_hint="--freeze-checkout/--reopen-checkout")
    max_refund = given["max_refund"]
    day = datetime.now(UTC).strftime("%Y%m%d")
    try:
        code = _run(
            rb,
            _target(given["stack"], given["target"]),
            do_apply=do_apply,
            plan_digest=plan,
            incident=given["incident"] or f"INC-{day}-{rb.name}",
            store=Store(given["out"]),
            caps=Caps(None if max_refund is None else round(max_refund * 100), given["max_rows"]),
            yes=given["yes"],
            who=who_am_i(given["who"]),
            older_than_s=given["older_than"],
            window_s=given["window"],
            scope={k: v for k, v in scope.items() if v not in (None, False)},
        )
    except Refused as refused:
        console.print(f"[bold red]refused:[/] {refused}")
        for line in refused.details:
            console.print(f"  {line}")
        raise typer.Exit(EXIT_REFUSED) from None
    except RunbookError as error:
        console.print(f"[bold red]cannot run {rb.name}:[/] {error}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    raise typer.Exit(code)


def _command(rb: Runbook) -> None:
    own = _SCOPES.get(rb.name, [])
    names = {p.name for p in own}

    def command(**given: Any) -> None:
        _invoke(rb, given, {k: given.pop(k) for k in list(given) if k in names})

    # Typer reads a command's options from its signature: the common ones plus its own.
    params = [*_COMMON, *own]
    command.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": None}
    command.__doc__ = (
        f"{rb.summary[0].upper()}{rb.summary[1:]} (severity {rb.severity}; drill scenario "
        f"{rb.scenario}). Read-only unless --apply --plan DIGEST."
    )
    runbook_app.command(rb.name)(command)


for _rb in RUNBOOKS.values():
    _command(_rb)

"""Probes: the scenario-specific things a drill does and measures, by name.

A scenario file names probes and passes their parameters; each returns flat figures
(``answers_409``, ``succeeded_intents``…) that the scenario's criteria read as
``<label>.<figure>``. Every request a probe makes goes through the shop, so it is in the
history for the invariant checkers too; the figures here are the probe's own view (what
one burst saw), the checkers judge the whole state.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gameday.drill.context import DrillContext, ProbeError, together
from gameday.drill.shop import CARD_OK, Session
from gameday.history import Op

Figures = dict[str, float]
Probe = Callable[..., Awaitable[Figures]]
PROBES: dict[str, Probe] = {}

_TRANSIENT = {"idempotency_in_progress", "payment_in_progress"}


def probe(fn: Probe) -> Probe:
    PROBES[fn.__name__] = fn
    return fn


def _statuses(ops: list[Op]) -> Figures:
    counts = Counter(op.status for op in ops)
    figures: Figures = {f"answers_{status or 'none'}": n for status, n in counts.items()}
    figures["answers_5xx"] = sum(n for s, n in counts.items() if s >= 500)
    figures["no_answer"] = counts.get(0, 0)
    return figures


async def _held(ctx: DrillContext, session: Session, process: str) -> int:
    resource, starts, ends = ctx.fresh_range()
    op = await ctx.shop.hold(session, resource, starts, ends, process)
    booking = (op.value or {}).get("booking_id")
    if op.type != "ok" or not isinstance(booking, int):
        raise ProbeError(f"could not hold a booking to pay for: {op.status} {op.error}")
    ctx.note_booking(booking)
    return booking


async def _succeeded_intents(ctx: DrillContext, booking: int) -> int:
    intents = await ctx.intents_for(booking)
    return sum(1 for i in intents if i.get("status") == "succeeded")


@probe
async def pay_storm(ctx: DrillContext, parallel: int = 50, keys: str = "same") -> Figures:
    """Playbook row 1: N payment calls for one booking released at once, with one
    idempotency key (a double-click storm) or a key each (a client that retries wrongly)."""
    if not 2 <= parallel <= 100 or keys not in ("same", "mixed"):
        raise ProbeError("pay_storm: parallel 2..100 (the playbook's 20-100), keys same|mixed")
    session = await ctx.session(process="storm")
    booking = await _held(ctx, session, "storm")
    key = f"storm-{uuid.uuid4().hex}"
    calls = [
        ctx.shop.pay_call(session, booking, key if keys == "same" else f"{key}-{i}")
        for i in range(parallel)
    ]
    ops = await ctx.driver.burst(
        ctx.shop.client(), calls, process_prefix=f"storm{keys}", value=ctx.shop.pay_value(booking)
    )
    figures = _statuses(ops)
    ok_digests = {(op.value or {}).get("digest") for op in ops if op.type == "ok"}
    figures["distinct_ok_answers"] = len(ok_digests)
    figures["unexpected_answers"] = sum(
        1
        for op in ops
        if not (op.status in (200, 202) or (op.status == 409 and op.error in _TRANSIENT))
    )
    payment_ids = {(op.value or {}).get("payment_id") for op in ops if op.type == "ok"}
    figures["distinct_payments"] = len(payment_ids - {None})
    figures["succeeded_intents"] = await _succeeded_intents(ctx, booking)
    return figures


@probe
async def slot_race(ctx: DrillContext, users: int = 30, rounds: int = 3) -> Figures:
    """Playbook row 2: N different users hold one resource and range at the same instant,
    then the winners pay, so "exactly one confirmed booking" is measured, not assumed.

    One race proves little either way (a broken service can get lucky), so it runs
    ``rounds`` times on fresh ranges and reports the worst round: ``winners`` is the most
    any round had, ``fewest_winners`` the least.
    """
    if not 2 <= users <= 100 or not 1 <= rounds <= 10:
        raise ProbeError("slot_race: users 2..100 (the playbook's 10-50), rounds 1..10")
    sessions = await ctx.sessions(users)
    winners: list[int] = []
    confirmed: list[int] = []
    totals: Counter[str] = Counter()
    for _ in range(rounds):
        won, paid, figures = await _race_once(ctx, sessions)
        winners.append(won)
        confirmed.append(paid)
        totals.update(figures)
    result: Figures = dict(totals)
    result["rounds"] = rounds
    result["winners"] = max(winners)
    result["fewest_winners"] = min(winners)
    result["confirmed"] = max(confirmed)
    result["fewest_confirmed"] = min(confirmed)
    return result


async def _race_once(ctx: DrillContext, sessions: list[Session]) -> tuple[int, int, Figures]:
    resource, starts, ends = ctx.fresh_range()
    calls = [ctx.shop.hold_call(s, resource, starts, ends) for s in sessions]
    ops = await ctx.driver.burst(
        ctx.shop.client(),
        calls,
        process_prefix="race",
        value=ctx.shop.hold_value(resource, starts, ends),
    )
    figures = _statuses(ops)
    winners = [(s, op) for s, op in zip(sessions, ops, strict=True) if op.status == 201]
    for _s, op in winners:
        ctx.note_booking((op.value or {}).get("booking_id"))
    figures["losers_slot_taken"] = sum(1 for op in ops if op.status == 409)
    figures["unexpected_answers"] = sum(1 for op in ops if op.status not in (201, 409))
    confirmed = 0
    for session, op in winners:
        booking = int((op.value or {})["booking_id"])
        paid = await ctx.shop.pay(session, booking, f"race-{uuid.uuid4().hex}", "race")
        confirmed += int((paid.value or {}).get("booking_status") == "confirmed")
    return len(winners), confirmed, figures


async def _paid_booking(ctx: DrillContext, process: str) -> tuple[Session, int, str]:
    session = await ctx.session(process=process)
    booking = await _held(ctx, session, process)
    op = await ctx.shop.pay(session, booking, f"{process}-{uuid.uuid4().hex}", process)
    intent = (op.value or {}).get("payment_intent")
    if op.status != 200 or not intent:
        raise ProbeError(f"could not pay for booking {booking}: {op.status} {op.error}")
    return session, booking, str(intent)


async def _wait_events(
    ctx: DrillContext, intent: str, kind: str, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = await ctx.events_for(intent)
        if any(e.get("type") == kind for e in events) or time.monotonic() > deadline:
            return events
        await asyncio.sleep(0.2)


@probe
async def webhook_replay(ctx: DrillContext, copies: int = 25) -> Figures:
    """Playbook row 3: one real ``payment_intent.succeeded`` delivered ``copies`` times at
    once, correctly signed; the service must apply it once (the checkers count the state
    transitions and confirmation e-mails)."""
    if not 2 <= copies <= 200:
        raise ProbeError("webhook_replay: copies 2..200")
    _session, booking, intent = await _paid_booking(ctx, "replay")
    events = await _wait_events(ctx, intent, "payment_intent.succeeded")
    event = next((e for e in events if e.get("type") == "payment_intent.succeeded"), None)
    if event is None:
        raise ProbeError(f"the provider sent no payment_intent.succeeded for {intent}")
    payload = orjson.dumps(event)
    calls = [ctx.shop.webhook_call(payload, ctx.shop.sign(payload)) for _ in range(copies)]
    ops = await ctx.driver.burst(
        ctx.shop.client(), calls, process_prefix="replay", value=ctx.shop.webhook_value(event)
    )
    figures = _statuses(ops)
    figures["accepted"] = sum(1 for op in ops if op.type == "ok")
    figures["booking"] = booking
    return figures


@probe
async def webhook_out_of_order(ctx: DrillContext) -> Figures:
    """Playbook row 3, second half: every event of one payment delivered newest first
    (a ``created`` after the ``succeeded``); the payment must stay succeeded and the
    booking confirmed — state never goes backwards."""
    session, booking, intent = await _paid_booking(ctx, "reorder")
    events = await _wait_events(ctx, intent, "charge.succeeded")
    if len(events) < 2:
        raise ProbeError(f"the provider sent {len(events)} event(s) for {intent}; need two")
    for event in reversed(events):
        payload = orjson.dumps(event)
        await ctx.driver.call(
            ctx.shop.client(),
            ctx.shop.webhook_call(payload, ctx.shop.sign(payload)),
            "reorder",
            value=ctx.shop.webhook_value(event),
        )
    seen = await ctx.shop.booking(session, booking, "reorder")
    final = (seen.value or {}).get("status")
    return {"events": len(events), "booking_confirmed": float(final == "confirmed")}


@probe
async def forged_webhooks(ctx: DrillContext) -> Figures:
    """A refund event for a paid booking signed with the wrong secret, and one correctly
    signed but ten minutes old: both must be refused and change nothing."""
    session, booking, intent = await _paid_booking(ctx, "forged")
    fake = {
        "id": f"evt_forged_{uuid.uuid4().hex[:16]}",
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {
            "object": {
                "id": f"ch_forged_{uuid.uuid4().hex[:12]}",
                "object": "charge",
                "payment_intent": intent,
                "refunded": True,
                "amount": 1,
            }
        },
    }
    payload = orjson.dumps(fake)
    forged = await ctx.driver.call(
        ctx.shop.client(),
        ctx.shop.webhook_call(payload, ctx.shop.sign(payload, secret="whsec_not_the_real_secret")),  # noqa: S106
        "forged",
        value=ctx.shop.webhook_value(fake),
    )
    stale = await ctx.driver.call(
        ctx.shop.client(),
        ctx.shop.webhook_call(payload, ctx.shop.sign(payload, at=time.time() - 600)),
        "forged",
        value=ctx.shop.webhook_value(fake),
    )
    seen = await ctx.shop.booking(session, booking, "forged")
    return {
        "forged_status": forged.status,
        "stale_status": stale.status,
        "accepted": float(forged.type == "ok") + float(stale.type == "ok"),
        "booking_still_confirmed": float((seen.value or {}).get("status") == "confirmed"),
    }


@probe
async def token_expiry_flow(ctx: DrillContext, users: int = 5) -> Figures:
    """Playbook row 6: hold with a short-lived token, let it expire, pay. Expected: 401,
    no charge at the provider, then refresh and pay again → confirmed."""
    ttl = float((ctx.stack.client_options.get("token_ttl_s") if ctx.stack else None) or 2.0)
    emails = ctx.users()[:users]

    async def one(i: int, email: str) -> Figures:
        process = f"expiry{i}"
        session = await ctx.shop.login(email, process, ttl_s=ttl)
        if session is None:
            raise ProbeError(f"cannot log in as {email}")
        booking = await _held(ctx, session, process)
        await asyncio.sleep(ttl + 0.5)
        key = f"expiry-{uuid.uuid4().hex}"
        first = await ctx.shop.pay(session, booking, key, process)
        charged_meanwhile = await _succeeded_intents(ctx, booking)
        any_intent = len(await ctx.intents_for(booking))
        renewed = await ctx.shop.refresh(session, process)
        resumed = 0.0
        if renewed is not None:
            again = await ctx.shop.pay(renewed, booking, key + "-r", process)
            resumed = float((again.value or {}).get("booking_status") == "confirmed")
        return {
            "answer_401": float(first.status == 401),
            "token_expired_code": float(first.error == "token_expired"),
            "charged_while_expired": float(charged_meanwhile),
            "intents_while_expired": any_intent,
            "resumed": resumed,
        }

    results = await together([one(i, e) for i, e in enumerate(emails)])
    figures: Figures = {"flows": len(results)}
    for name in results[0] if results else ():
        figures[name] = sum(r[name] for r in results)
    return figures


@probe
async def checkout(ctx: DrillContext, where: str = "ingress") -> Figures:
    """One whole purchase (log in, hold, pay): the recovery probe after a fault is healed."""
    session = await ctx.session(process="recovery")
    resource, starts, ends = ctx.fresh_range()
    held = await ctx.shop.hold(session, resource, starts, ends, "recovery", where=where)
    booking = (held.value or {}).get("booking_id")
    if held.type != "ok" or not isinstance(booking, int):
        return {"ok": 0.0}
    ctx.note_booking(booking)
    paid = await ctx.shop.pay(
        session, booking, f"recovery-{uuid.uuid4().hex}", "recovery", card=CARD_OK, where=where
    )
    return {"ok": float(paid.status == 200)}

"""Incident switches of the service, on both databases: revoking a user's tokens, the
access log (who asked for what, from which address), and freezing checkout."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bookings.adapters.access_log import AccessLog, Entry
from bookings.adapters.breaker import CircuitBreaker
from bookings.adapters.db import Database
from bookings.adapters.flags import CHECKOUT_FROZEN, FlagStore
from bookings.domain.model import Role, Tier
from bookings.errors import AuthError, DbUnavailable
from bookings.observability.metrics import Metrics
from bookings.services.auth import Principal, Tokens
from bookings.services.context import Context
from bookings.services.revocation import Revocations
from bookings.settings import Settings
from stripe_emulator import EmulatorServer
from tests.bookings.support import ScratchDatabase, SmtpSink, Stack, World, run, slot
from tests.bookings.test_api import PASSWORD, add_user, assert_error, bearer, login

SOURCE = "203.0.113.5"


def _counter(stack: Stack, name: str) -> float:
    text = stack.http.get("/metrics").text
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name
    )


def test_revoked_tokens_are_refused_and_the_next_login_is_not(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    user = add_user(db, "alice@example.test", PASSWORD)
    pair = login(stack, "alice@example.test", PASSWORD).json()
    minted = stack.headers(user)  # another token of hers, issued elsewhere
    bystander = stack.headers(world.customers[0])
    assert stack.http.get("/resources", headers=bearer(pair["access_token"])).status_code == 200

    done = stack.http.post(
        f"/admin/users/{user}/revoke-tokens", headers=stack.admin, json={"reason": "INC-1"}
    )
    assert done.status_code == 200, done.text
    assert done.json()["user_id"] == user
    assert datetime.fromisoformat(done.json()["tokens_valid_after"]) <= datetime.now(UTC)

    # In force at once on this worker: access tokens, refresh tokens, any issuer.
    for headers in (bearer(pair["access_token"]), minted):
        assert_error(stack.http.get("/resources", headers=headers), 401, "token_revoked")
    renewed = stack.http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert_error(renewed, 401, "token_revoked")
    # A login right after (within the same second) is not caught by it.
    fresh = login(stack, "alice@example.test", PASSWORD).json()
    assert stack.http.get("/resources", headers=bearer(fresh["access_token"])).status_code == 200
    again = stack.http.post("/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
    assert again.status_code == 200, again.text
    assert stack.http.get("/resources", headers=bystander).status_code == 200

    assert _counter(stack, "bookings_revoked_tokens_refused_total") == 3
    audited = db.query(
        "SELECT actor, action, subject FROM audit_log WHERE action = 'revoke_tokens'"
    )
    assert [tuple(r) for r in audited] == [("admin:0", "revoke_tokens", f"user:{user}")]


def test_revoke_refuses_an_unknown_user_and_a_bad_reason(stack: Stack) -> None:
    missing = stack.http.post("/admin/users/987654/revoke-tokens", headers=stack.admin, json={})
    assert_error(missing, 404, "user_not_found")
    long = stack.http.post(
        "/admin/users/1/revoke-tokens", headers=stack.admin, json={"reason": "x" * 201}
    )
    assert long.status_code == 422


def test_a_locked_account_cannot_log_in_until_unlocked(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    user = add_user(db, "bob@example.test", PASSWORD)
    pair = login(stack, "bob@example.test", PASSWORD).json()
    locked = stack.http.post(
        f"/admin/users/{user}/lock", headers=stack.admin, json={"reason": "INC-2 leaked password"}
    )
    assert locked.status_code == 200, locked.text
    assert locked.json()["locked"] is True
    # Its tokens are revoked with it, and the right password is refused; a wrong one is told
    # only that it is wrong (the lock is no oracle for who has an account).
    assert_error(stack.http.get("/resources", headers=bearer(pair["access_token"])), 401,
                 "token_revoked")  # fmt: skip
    assert_error(stack.http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
                 401, "token_revoked")  # fmt: skip
    assert_error(login(stack, "bob@example.test", PASSWORD), 403, "account_locked")
    assert_error(login(stack, "bob@example.test", "not-the-password"), 401, "invalid_credentials")
    assert login(stack, "c0@example.test", PASSWORD).status_code in (200, 401)  # others untouched
    assert (
        stack.http.get("/resources", headers=stack.headers(world.customers[0])).status_code == 200
    )

    unlocked = stack.http.post(f"/admin/users/{user}/unlock", headers=stack.admin, json={})
    assert unlocked.status_code == 200, unlocked.text
    fresh = login(stack, "bob@example.test", PASSWORD)
    assert fresh.status_code == 200, fresh.text
    assert (
        stack.http.get("/resources", headers=bearer(fresh.json()["access_token"])).status_code
        == 200
    )
    # The tokens from before the lock stay refused.
    assert_error(stack.http.get("/resources", headers=bearer(pair["access_token"])), 401,
                 "token_revoked")  # fmt: skip
    audited = db.query("SELECT action, subject FROM audit_log WHERE subject = :s ORDER BY id",
                       s=f"user:{user}")  # fmt: skip
    assert [tuple(r) for r in audited] == [("lock_account", f"user:{user}"),
                                           ("unlock_account", f"user:{user}")]  # fmt: skip
    missing = stack.http.post("/admin/users/987654/lock", headers=stack.admin, json={})
    assert_error(missing, 404, "user_not_found")
    unauthorised = stack.http.post(f"/admin/users/{user}/lock", json={})
    assert unauthorised.status_code in (401, 403)


def _rows(db: ScratchDatabase, source: str) -> list[tuple[object, ...]]:
    return [
        tuple(r)
        for r in db.query(
            "SELECT method, route, status, user_id FROM access_log WHERE source = :s "
            "ORDER BY at, id",
            s=source,
        )
    ]


def test_the_access_log_records_who_asked_for_what_and_never_secrets(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    user = world.customers[1]
    token = stack.token(user)
    via = {"X-Forwarded-For": SOURCE}
    assert stack.http.get("/resources", headers={**bearer(token), **via}).status_code == 200
    bad = stack.http.get("/resources?card=4242", headers={**bearer("nope"), **via})
    assert bad.status_code == 401
    assert stack.http.get("/health/live", headers=via).status_code == 200
    assert stack.http.get("/metrics", headers=via).status_code == 200

    assert stack.wait_for(lambda: len(_rows(db, SOURCE)) >= 2, timeout_s=5)
    time.sleep(1.2)  # one more flush: nothing else may arrive (health and metrics are not kept)
    assert _rows(db, SOURCE) == [("GET", "/resources", 200, user), ("GET", "/resources", 401, None)]
    everything = repr(db.query("SELECT * FROM access_log"))
    assert token not in everything
    assert "4242" not in everything


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(
    pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    with Stack(pg, emulator, smtp, trusted_proxies="") as stack:
        spoofed = "198.51.100.66"
        stack.http.get("/resources", headers={"X-Forwarded-For": spoofed})
        assert stack.wait_for(lambda: bool(_rows(pg, "127.0.0.1")), timeout_s=5)
        assert _rows(pg, spoofed) == []


def test_the_access_log_buffer_is_bounded_while_the_database_is_away(pg: ScratchDatabase) -> None:
    def entry(i: int) -> Entry:
        return Entry(datetime.now(UTC), SOURCE, "GET", f"/r/{i}", 200, None, None, 1.0, f"r{i}")

    async def go() -> tuple[int, float | None]:
        away = Settings(environment="test", database_url="postgresql://postgres@127.0.0.1:1/x")
        metrics = Metrics()
        down = Database(away, CircuitBreaker("database", failures=100, reset_s=1))
        log = AccessLog(down, metrics, capacity=100)
        for i in range(150):
            log.record(entry(i))
        with pytest.raises(DbUnavailable):
            await log.flush()
        kept = len(log)
        dropped = metrics.registry.get_sample_value("bookings_access_log_dropped_total")
        await down.close()
        # The same buffer written once the database is there: the newest 100, in order.
        up = Database(
            Settings(environment="test", database_url=pg.url),
            CircuitBreaker("database", failures=100, reset_s=1),
        )
        log._db = up
        assert await log.flush() == 100
        await up.close()
        return kept, dropped

    kept, dropped = run(go())
    assert (kept, dropped) == (100, 50)
    routes = [r[0] for r in pg.query("SELECT route FROM access_log ORDER BY id")]
    assert routes == [f"/r/{i}" for i in range(50, 150)]


def test_a_frozen_checkout_refuses_holds_and_payments_and_nothing_else(
    db: ScratchDatabase, stack: Stack, world: World
) -> None:
    user = world.customers[2]
    held = stack.hold(user, world.resource, slot(days=3, hour=9))
    assert held.status_code == 201, held.text
    booking = held.json()["id"]

    def freeze(on: bool) -> None:
        r = stack.http.put(f"/admin/flags/{CHECKOUT_FROZEN}", headers=stack.admin,
                           json={"enabled": on})  # fmt: skip
        assert r.status_code == 200, r.text

    freeze(True)
    try:
        refused = stack.hold(user, world.resource, slot(days=3, hour=12))
        assert_error(refused, 503, "checkout_frozen")
        assert refused.headers["Retry-After"] == "60"
        paused = stack.pay(user, booking, "frozen-key")
        assert_error(paused, 503, "checkout_frozen")
        assert (
            stack.http.get(f"/bookings/{booking}", headers=stack.headers(user)).json()["status"]
            == "held"
        )
        assert stack.http.get("/health/full").json()["flags"][CHECKOUT_FROZEN] is True
    finally:
        freeze(False)
    # The paused attempt claimed nothing: the same key pays now.
    paid = stack.pay(user, booking, "frozen-key")
    assert paid.status_code == 200, paid.text
    assert stack.hold(user, world.resource, slot(days=3, hour=12)).status_code == 201


def test_a_burst_of_requests_reads_the_revocations_once(pg: ScratchDatabase) -> None:
    async def go() -> int:
        settings = Settings(environment="test", database_url=pg.url)
        db = Database(settings, CircuitBreaker("database", failures=100, reset_s=1))
        ctx = Context(settings=settings, db=db, flags=FlagStore(db, ttl_s=2, unsafe=False),
                      metrics=Metrics())  # fmt: skip
        revocations = Revocations(ctx)
        reads = 0
        reload = revocations.reload

        async def counted() -> None:
            nonlocal reads
            reads += 1
            await reload()

        revocations.reload = counted  # type: ignore[method-assign]
        who = Principal(1, Role.CUSTOMER, Tier.NORMAL, time.time())
        await asyncio.gather(*(revocations.check(who) for _ in range(50)))
        await db.close()
        return reads

    assert run(go()) == 1


def test_a_burst_of_requests_reads_the_flags_once(pg: ScratchDatabase) -> None:
    """The flag cache expiring under a storm is one read, not one per request in flight."""

    async def go() -> tuple[int, set[bool]]:
        settings = Settings(environment="test", database_url=pg.url)
        db = Database(settings, CircuitBreaker("database", failures=100, reset_s=1))
        flags = FlagStore(db, ttl_s=2, unsafe=False)
        reads = 0
        refresh = flags.refresh

        async def counted() -> dict[str, bool]:
            nonlocal reads
            reads += 1
            return await refresh()

        flags.refresh = counted  # type: ignore[method-assign]
        seen = await asyncio.gather(*(flags.enabled(CHECKOUT_FROZEN) for _ in range(50)))
        await db.close()
        return reads, set(seen)

    assert run(go()) == (1, {False})


def test_a_leeway_on_expiry_accepts_expired_tokens_and_none_is_the_default() -> None:
    """The misconfiguration drill scenario 6 must catch (test_drill_broken.py): with a
    leeway, a token that expired seconds ago still authenticates."""
    now = datetime.now(UTC)
    expired = jwt.encode(
        {"sub": "7", "role": "customer", "tier": "normal", "typ": "access",
         "iat": now - timedelta(seconds=10), "exp": now - timedelta(seconds=5)},
        Settings(environment="test").jwt_secret, algorithm="HS256",
    )  # fmt: skip
    strict = Tokens(Settings(environment="test"), lambda: now)
    with pytest.raises(AuthError) as refused:
        strict.decode(expired)
    assert refused.value.code == "token_expired"
    lenient = Tokens(Settings(environment="test", jwt_leeway_s=30), lambda: now)
    assert lenient.decode(expired).user_id == 7

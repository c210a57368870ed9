"""The API contract and its observability, against the real service on PostgreSQL: tokens,
error bodies, correlation ids, redaction, metrics, the admin API, feature flags, premium
rate limits, the published schema and the health endpoints."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa
import structlog
from fastapi.routing import APIRoute
from prometheus_client.parser import text_string_to_metric_families

from bookings.adapters import tables
from bookings.adapters.flags import DEFAULTS, PAYMENT_IDEMPOTENCY_ENFORCED
from bookings.api.routes import admin, auth, bookings, health, resources, webhooks
from bookings.domain.model import Role, Tier
from bookings.observability import logging as logs
from bookings.observability.metrics import Metrics
from bookings.services.auth import Principal, hash_password
from gameday.stack.processes import free_port
from stripe_emulator import EmulatorServer
from tests.bookings.support import (
    ADMIN_TOKEN,
    TEST_KEY,
    ScratchDatabase,
    SmtpSink,
    Stack,
    World,
    run,
    slot,
)

PASSWORD = "correct horse battery staple"
VISA = "4242424242424242"
ERROR_KEYS = {"error", "message"}


def add_user(db: ScratchDatabase, email: str, password: str, tier: Tier = Tier.NORMAL) -> int:
    """A customer with a real scrypt hash, so that ``/auth/token`` can check the password."""

    async def go() -> int:
        engine = db.engine()
        async with engine.begin() as conn:
            result = await conn.execute(
                sa.insert(tables.users).values(
                    email=email, password_hash=hash_password(password), role="customer",
                    tier=tier.value, created_at=datetime.now(UTC),
                )
            )  # fmt: skip
        await engine.dispose()
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    return run(go())


def login(stack: Stack, email: str, password: str, **extra: Any) -> httpx.Response:
    return stack.http.post("/auth/token", json={"email": email, "password": password, **extra})


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def claims(token: str) -> dict[str, Any]:
    found: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return found


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    body = response.json()
    assert (response.status_code, body.get("error")) == (status, code), response.text
    assert set(body) >= ERROR_KEYS
    assert isinstance(body["message"], str)
    assert body["message"]


def hold_and_pay(stack: Stack, user: int, resource: int, hour: int, key: str) -> dict[str, Any]:
    held = stack.hold(user, resource, slot(days=2, hour=hour))
    assert held.status_code == 201, held.text
    paid = stack.pay(user, held.json()["id"], key)
    assert paid.status_code == 200, paid.text
    body: dict[str, Any] = paid.json()
    return body


def audit(db: ScratchDatabase) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in db.query("SELECT actor, action, subject FROM audit_log ORDER BY id")]


# ---------------------------------------------------------------- tokens


def test_login_returns_a_working_token_pair(pg: ScratchDatabase, stack: Stack) -> None:
    user = add_user(pg, "alice@example.test", PASSWORD)
    r = login(stack, "Alice@Example.test", PASSWORD)
    assert r.status_code == 200, r.text
    pair = r.json()
    assert set(pair) == {"access_token", "refresh_token", "token_type", "expires_in"}
    assert pair["token_type"] == "bearer"
    assert pair["expires_in"] == stack.settings.access_token_ttl_s
    access, refresh = claims(pair["access_token"]), claims(pair["refresh_token"])
    assert (access["sub"], access["typ"], refresh["typ"]) == (str(user), "access", "refresh")
    # iat carries the fraction of a second (revocation compares it); exp whole seconds.
    assert access["exp"] - math.floor(access["iat"]) == stack.settings.access_token_ttl_s
    mine = stack.http.get("/resources", headers=bearer(pair["access_token"]))
    assert mine.status_code == 200, mine.text


def test_wrong_password_and_unknown_email_get_the_same_answer(
    pg: ScratchDatabase, stack: Stack
) -> None:
    add_user(pg, "alice@example.test", PASSWORD)
    wrong = login(stack, "alice@example.test", PASSWORD + "!")
    unknown = login(stack, "nobody@example.test", PASSWORD)
    assert_error(wrong, 401, "invalid_credentials")
    assert_error(unknown, 401, "invalid_credentials")
    assert wrong.json() == unknown.json()
    assert wrong.headers["WWW-Authenticate"] == unknown.headers["WWW-Authenticate"] == "Bearer"


def test_ttl_shortens_the_access_token_but_never_lengthens_it(
    pg: ScratchDatabase, stack: Stack
) -> None:
    add_user(pg, "alice@example.test", PASSWORD)
    short = login(stack, "alice@example.test", PASSWORD, ttl_s=5).json()
    long = login(stack, "alice@example.test", PASSWORD, ttl_s=86_400).json()
    assert short["expires_in"] == 5
    access = claims(short["access_token"])
    assert access["exp"] - math.floor(access["iat"]) == 5
    ceiling = stack.settings.access_token_ttl_s
    assert long["expires_in"] == ceiling
    access = claims(long["access_token"])
    assert access["exp"] - math.floor(access["iat"]) == ceiling
    # The refresh token is not shortened along with the access token.
    refresh = claims(short["refresh_token"])
    assert refresh["exp"] - math.floor(refresh["iat"]) == stack.settings.refresh_token_ttl_s
    assert_error(login(stack, "alice@example.test", PASSWORD, ttl_s=0), 422, "validation_error")
    # A token the service issued itself expires when it says (exp <= iat + 1 s here).
    quick = login(stack, "alice@example.test", PASSWORD, ttl_s=1).json()["access_token"]
    time.sleep(1.1)
    assert_error(stack.http.get("/resources", headers=bearer(quick)), 401, "token_expired")


def test_refresh_takes_a_refresh_token_and_refuses_an_access_token(
    pg: ScratchDatabase, stack: Stack
) -> None:
    user = add_user(pg, "alice@example.test", PASSWORD)
    pair = login(stack, "alice@example.test", PASSWORD).json()
    renewed = stack.http.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert renewed.status_code == 200, renewed.text
    fresh = renewed.json()
    assert claims(fresh["access_token"])["sub"] == str(user)
    assert fresh["access_token"] != pair["access_token"]
    assert stack.http.get("/resources", headers=bearer(fresh["access_token"])).status_code == 200
    refused = stack.http.post("/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert_error(refused, 401, "invalid_token")
    # Nor is a refresh token accepted where an access token is due.
    assert_error(
        stack.http.get("/resources", headers=bearer(pair["refresh_token"])), 401, "invalid_token"
    )


def forge(stack: Stack, user: int, *, exp_in_s: float, secret: str | None = None) -> str:
    now = datetime.now(UTC)
    payload = {"sub": str(user), "role": "customer", "tier": "normal", "typ": "access",
               "iat": now, "exp": now + timedelta(seconds=exp_in_s)}  # fmt: skip
    return jwt.encode(payload, secret or stack.settings.jwt_secret, algorithm="HS256")


def test_expired_tampered_and_missing_tokens_are_refused(stack: Stack, world: World) -> None:
    user = world.customers[0]

    def get(headers: dict[str, str]) -> httpx.Response:
        return stack.http.get("/resources", headers=headers)

    valid = forge(stack, user, exp_in_s=60)
    assert get(bearer(valid)).status_code == 200  # the forging itself is right
    assert_error(get(bearer(forge(stack, user, exp_in_s=-1))), 401, "token_expired")
    head, body, signature = valid.split(".")
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert_error(get(bearer(f"{head}.{body}.{flipped}")), 401, "invalid_token")
    other_body = forge(stack, world.customers[1], exp_in_s=60).split(".")[1]
    assert_error(get(bearer(f"{head}.{other_body}.{signature}")), 401, "invalid_token")
    wrong_key = forge(stack, user, exp_in_s=60, secret="another-secret-of-32-bytes-length")
    assert_error(get(bearer(wrong_key)), 401, "invalid_token")
    unsigned = jwt.encode(claims(valid), key=None, algorithm="none")
    assert_error(get(bearer(unsigned)), 401, "invalid_token")
    assert_error(get(bearer("not-a-jwt")), 401, "invalid_token")
    missing = get({})
    assert_error(missing, 401, "not_authenticated")
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert_error(get({"Authorization": f"Basic {valid}"}), 401, "not_authenticated")


# ---------------------------------------------------------------- errors


def test_errors_carry_a_stable_code_and_a_message(stack: Stack, world: World) -> None:
    headers = stack.headers(world.customers[0])
    assert_error(stack.http.get("/no/such/route"), 404, "not_found")
    assert_error(stack.http.get("/bookings/999999", headers=headers), 404, "booking_not_found")
    assert_error(stack.http.delete("/bookings"), 405, "method_not_allowed")
    assert_error(stack.http.get("/auth/token"), 405, "method_not_allowed")
    malformed = stack.http.post(
        "/bookings", headers={**headers, "Content-Type": "application/json"}, content=b"{oops"
    )
    assert_error(malformed, 422, "validation_error")
    start, end = slot()
    wrong_types = stack.http.post(
        "/bookings", headers=headers,
        json={"resource_id": "one", "starts_at": "tomorrow", "ends_at": [end]},
    )  # fmt: skip
    assert_error(wrong_types, 422, "validation_error")
    fields = {p["field"] for p in wrong_types.json()["details"]}
    assert fields == {"body.resource_id", "body.starts_at", "body.ends_at"}
    extra = stack.http.post(
        "/bookings", headers=headers,
        json={"resource_id": world.resource, "starts_at": start, "ends_at": end, "x": 1},
    )  # fmt: skip
    assert_error(extra, 422, "validation_error")
    no_key = stack.http.post("/bookings/1/payment", headers=headers, json={"payment_method": VISA})
    assert_error(no_key, 422, "idempotency_key_required")


FAR = "9999-12-31T23:00:00-05:00"
ODD: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/auth/token", {"json": {"email": "a\x00b@example.test", "password": "x"}}),
    ("POST", "/auth/token", {"json": {"email": "é@例え.テスト", "password": "\x00"}}),
    ("POST", "/auth/token", {"json": {"email": "x" * 100_000, "password": "x"}}),
    ("POST", "/auth/token", {"json": {"email": "a@b.cd", "password": "p", "ttl_s": 1e308}}),
    ("POST", "/auth/token", {"json": {"email": "a@b.cd", "password": "p", "ttl_s": "NaN"}}),
    ("POST", "/auth/token", {"content": "[" * 50_000 + "]" * 50_000}),
    ("POST", "/auth/token", {"content": b"\xff\xfe\x00garbage"}),
    ("POST", "/auth/token", {"content": '{"email": "a@b.cd", "password": "p"}', "ctype": "text"}),
    ("POST", "/auth/refresh", {"json": {"refresh_token": "e" * 4096}}),
    ("POST", "/bookings", {"json": {"resource_id": 2**70, "starts_at": FAR, "ends_at": FAR}}),
    ("POST", "/bookings", {"json": {"resource_id": 1, "starts_at": FAR, "ends_at": FAR}}),
    (
        "POST",
        "/bookings",
        {
            "json": {
                "resource_id": 1,
                "starts_at": "0001-01-01T00:00:00+14:00",
                "ends_at": "0001-01-01T01:00:00+14:00",
            }
        },
    ),
    ("POST", "/bookings", {"json": [1, 2, 3]}),
    ("POST", "/bookings", {"json": {"resource_id": 1, "starts_at": "x" * 1_000_000}}),
    ("GET", "/bookings/99999999999999999999", {}),
    ("GET", "/bookings/-1", {}),
    ("GET", "/bookings/%F0%9F%99%82", {}),
    ("GET", "/resources?limit=100000&after=-5", {}),
    ("GET", "/resources/1/availability?from=yesterday&to=now", {}),
    ("GET", f"/resources/1/availability?from=2030-01-01T00:00:00Z&to={FAR}", {}),
    (
        "GET",
        "/resources/1/availability?from=2030-01-01T00:00:00-05:00&to=2030-01-01T00:00:00%2B14:00",
        {},
    ),
    # The end is 10000-01-01 in UTC: no datetime holds it. (A window inside year 9999 is
    # valid input: 200 when resource 1 exists, 404 when not, so it is not an odd case.)
    ("GET", "/resources/1/availability?from=9999-12-30T00:00:00Z&to=9999-12-31T23:30:00-01:00", {}),
    ("POST", "/bookings/1/payment", {"json": {"payment_method": "🙂" * 50}, "key": "k"}),
    ("POST", "/bookings/1/payment", {"json": {"payment_method": VISA}, "key": "k" * 300}),
    ("POST", "/bookings/1/payment", {"json": {"payment_method": VISA}, "key": "a b"}),
    ("PUT", "/admin/flags/" + "F" * 1000, {"json": {"enabled": True}, "admin": True}),
    ("PUT", "/admin/flags/X", {"json": {"enabled": "maybe"}, "admin": True}),
    ("POST", "/admin/webhooks/" + "e" * 300 + "/replay", {"admin": True}),
    ("POST", "/admin/webhooks/evt_%00_nul/replay", {"admin": True}),
    ("POST", "/webhooks/stripe", {"content": b"{}" * 400_000}),
    ("POST", "/webhooks/stripe", {"json": {"id": "evt_1"}, "sig": "t=1,v1=" + "0" * 64}),
]


def test_odd_input_is_a_client_error_never_a_server_error(stack: Stack, world: World) -> None:
    """Every case of ``ODD`` answers 4xx with an error body (one request each)."""
    wrong = []
    for method, path, spec in ODD:
        headers = stack.headers(world.customers[0], spec.get("key"))
        if spec.get("admin"):
            headers.update(stack.admin)
        if "sig" in spec:
            headers["Stripe-Signature"] = spec["sig"]
        kwargs: dict[str, Any] = {"json": spec["json"]} if "json" in spec else {}
        if "content" in spec:
            kwargs["content"] = spec["content"]
            ctype = "text/plain" if spec.get("ctype") == "text" else "application/json"
            headers["Content-Type"] = ctype
        r = stack.http.request(method, path, headers=headers, **kwargs)
        body = r.json()
        if not (
            400 <= r.status_code < 500
            and set(body) >= ERROR_KEYS
            and re.fullmatch(r"[a-z_]+", body["error"])
        ):
            wrong.append((method, path[:60], r.status_code, r.text[:200]))
    assert wrong == []
    assert len(ODD) >= 30


# ---------------------------------------------------------------- correlation ids and logs


class Logs:
    """The service's JSON log lines, as its own ``configure`` renders them."""

    def __init__(self, buffer: io.StringIO) -> None:
        self.buffer = buffer

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> list[dict[str, Any]]:
        """The lines matching ``predicate``, once there is one (access lines are written
        just after the response is sent)."""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            found = [line for line in self.lines() if predicate(line)]
            if found:
                return found
            time.sleep(0.02)
        return []


@contextlib.contextmanager
def captured_logs() -> Iterator[Logs]:
    """Everything logged in this process at DEBUG and up, through ``logs.configure`` with
    a buffer as its stream; the session's handlers and levels are restored afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    # Flag flips in earlier tests may have pinned these (GAMEDAY_VERBOSE_OBSERVABILITY).
    pinned = [
        logging.getLogger(f"bookings.services.{n}") for n in ("holds", "payments", "webhooks")
    ]
    levels = [(logger, logger.level) for logger in pinned]
    buffer = io.StringIO()
    logs.configure("debug", stream=buffer)
    for logger in pinned:
        logger.setLevel(logging.NOTSET)
    try:
        yield Logs(buffer)
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)
        for logger, old in levels:
            logger.setLevel(old)


MALICIOUS: list[str | bytes | None] = [
    None, "", "has spaces in it", "tab\tand\ttabs", "crlf%0d%0aSet-Cookie:x", "<script>",
    "x" * 65, "x" * 200, "semi;colon", "ünïcödé".encode(),
]  # fmt: skip


def test_a_sane_request_id_is_echoed_and_any_other_replaced(stack: Stack) -> None:
    for sane in ("trace-abc.123:0", "A" * 64, "0f9c2b7e"):
        r = stack.http.get("/health/live", headers={"X-Request-ID": sane})
        assert r.headers["X-Request-ID"] == sane
    seen = set()
    for given in MALICIOUS:
        headers: dict[str, Any] = {} if given is None else {"X-Request-ID": given}
        answer = stack.http.get("/health/live", headers=headers).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", answer), (given, answer)
        seen.add(answer)
    assert len(seen) == len(MALICIOUS)  # generated afresh for each request


def test_the_request_id_is_on_the_service_log_lines_of_its_request(
    stack: Stack, world: World
) -> None:
    when = slot(days=3)
    assert stack.hold(world.customers[0], world.resource, when).status_code == 201
    body = {"resource_id": world.resource, "starts_at": when[0], "ends_at": when[1]}
    with captured_logs() as captured:
        conflict = stack.http.post("/bookings", json=body, headers={
            **stack.headers(world.customers[1]), "X-Request-ID": "drill-7f3a"})  # fmt: skip
        assert conflict.status_code == 409
        bad = stack.http.get("/no/such/route", headers={"X-Request-ID": "bad id"})
        generated = bad.headers["X-Request-ID"]
        access = captured.wait_for(lambda line: line.get("event") == "request")
        assert captured.wait_for(lambda line: line.get("req_id") == generated)
    mine = [line for line in captured.lines() if line.get("req_id") == "drill-7f3a"]
    events = {line["event"] for line in mine}
    # The service's own line about the conflict carries the id, not only the access line.
    assert {"booking conflict", "request"} <= events, mine
    request_line = next(line for line in mine if line["event"] == "request")
    assert (request_line["route"], request_line["status"]) == ("/bookings", 409)
    assert request_line["logger"] == "bookings.access"
    assert len(access) >= 2
    assert all("req_id" in line for line in access)
    not_found = next(line for line in captured.lines() if line.get("req_id") == generated)
    assert not_found["route"] == "unmatched"
    assert "bad id" not in captured.text


# ---------------------------------------------------------------- redaction


def leaks(text: str, secrets: list[str]) -> list[str]:
    """Every secret or piece of personal data found in ``text``: the given values, and
    anything shaped like a card number, a JWT, an email address or a Stripe secret."""
    found = [s for s in secrets if s in text]
    patterns = [r"\b4242[ -]?4242[ -]?4242[ -]?4242\b", r"eyJ[\w-]+\.[\w-]+\.[\w-]+",
                r"[\w.+-]+@[\w-]+\.[\w.-]+", r"sk_test_\w+", r"whsec_\w+"]  # fmt: skip
    found += [m.group(0) for p in patterns for m in re.finditer(p, text)]
    return found


def test_no_secret_or_personal_data_reaches_the_logs(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    email = "carol.customer@example.test"
    add_user(pg, email, PASSWORD)
    with captured_logs() as captured:
        pair = login(stack, email, PASSWORD).json()
        token = pair["access_token"]
        when = slot()
        body = {"resource_id": world.resource, "starts_at": when[0], "ends_at": when[1]}
        held = stack.http.post("/bookings", headers=bearer(token), json=body)
        assert held.status_code == 201, held.text
        paid = stack.http.post(
            f"/bookings/{held.json()['id']}/payment",
            headers={**bearer(token), "Idempotency-Key": f"pay-{uuid.uuid4()}"},
            json={"payment_method": "4242 4242 4242 4242"},
        )
        assert paid.status_code == 200, paid.text
        assert stack.wait_for(lambda: len(stack.smtp.messages) == 1)
        # A line that carries every secret, through the same pipeline: masked, yet captured.
        probe = f"Bearer {token} {email} {VISA} {TEST_KEY} {stack.settings.stripe_webhook_secret}"
        structlog.get_logger("bookings.probe").warning("probe", note=probe, email=email)
        assert captured.wait_for(lambda line: line.get("event") == "request")
    secrets = [token, pair["refresh_token"], email, PASSWORD, VISA, "4242 4242 4242 4242",
               TEST_KEY, stack.settings.stripe_webhook_secret, ADMIN_TOKEN]  # fmt: skip
    assert len(leaks(probe, secrets)) >= 6  # the detector finds them when they are there
    lines = captured.lines()
    assert len(lines) >= 5
    assert {line.get("logger") for line in lines} >= {"bookings.access", "bookings.probe"}
    assert any(line.get("event") == "booking confirmed" for line in lines)
    probe_line = next(line for line in lines if line["event"] == "probe")
    assert probe_line["email"] == logs.REDACTED
    assert logs.REDACTED in probe_line["note"]
    assert leaks(captured.text, secrets) == []
    assert any(line.get("req_id") for line in lines)


@pytest.mark.parametrize(
    ("raw", "gone"),
    [
        ("card 4242 4242 4242 4242 declined", "4242"),
        ("card 4000-0000-0000-9995", "9995"),
        ("pan=5555555555554444;", "5555555555554444"),
        ("Authorization: Bearer abc.DEF-ghi_~+/=", "abc.DEF"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl here", "eyJ"),
        ("using sk_test_51Habc123 now", "sk_test_51Habc123"),
        ("key rk_live_abc and secret whsec_ZmFrZQ", "whsec_ZmFrZQ"),
        ("mail to Jane.Doe+drill@Example.co.uk please", "Jane.Doe"),
    ],
)
def test_redact_text_masks_secrets_in_free_text(raw: str, gone: str) -> None:
    assert gone in raw
    masked = logs.redact_text(raw)
    assert gone not in masked
    assert logs.REDACTED in masked


@pytest.mark.parametrize(
    "harmless",
    ["booking 12345 held for 2 hours from 2030-01-01T10:00:00Z",
     "payment 7 of booking 8: 4500 cents, intent pi_3Mabc, method pm_card_visa",
     "route /bookings/{booking_id} answered 409 in 12.5 ms"],
)  # fmt: skip
def test_redact_text_leaves_ordinary_text_alone(harmless: str) -> None:
    assert logs.redact_text(harmless) == harmless


def test_the_redact_processor_masks_keys_and_values_that_would_leak_without_it() -> None:
    def event() -> dict[str, Any]:
        return {
            "event": "login by bob@example.test",
            "password": "hunter2",
            "user": {"email": "bob@example.test", "name": "Bob", "id": 7},
            "Authorization": "Bearer eyJa.eyJb.sig",
            "methods": ["4242424242424242", 3],
            "detail": "retry with sk_test_abcdef",
            "count": 3,
            "req_id": "trace-1",
        }

    plain = structlog.processors.JSONRenderer()
    unredacted = str(plain(None, "info", event()))
    secrets = ("hunter2", "bob@example.test", "4242424242424242", "sk_test_abcdef", "eyJa")
    assert all(secret in unredacted for secret in secrets)  # without redaction, all leak
    done = logs.redact(None, "info", event())
    assert done["password"] == logs.REDACTED
    assert done["Authorization"] == logs.REDACTED
    assert done["user"] == {"email": logs.REDACTED, "name": "Bob", "id": 7}
    assert done["methods"] == [logs.REDACTED, 3]
    assert done["event"] == f"login by {logs.REDACTED}"
    assert done["detail"] == f"retry with {logs.REDACTED}"
    assert (done["count"], done["req_id"]) == (3, "trace-1")
    rendered = str(plain(None, "info", done))
    assert [secret for secret in secrets if secret in rendered] == []


# ---------------------------------------------------------------- metrics


def scrape(stack: Stack) -> dict[str, list[Any]]:
    """``/metrics`` parsed: samples by metric family name."""
    text = stack.http.get("/metrics").text
    return {f.name: list(f.samples) for f in text_string_to_metric_families(text)}


def value(
    families: dict[str, list[Any]], sample: str, family: str | None = None, **labels: str
) -> float | None:
    for s in families.get(family or sample, []):
        if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return None


@pytest.fixture
def patient(pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink) -> Iterator[Stack]:
    """The service with a Redis timeout long enough for a loaded machine, for tests that
    count on Redis answering (``redis_up``, cache hits, a ``ready`` status)."""
    with Stack(pg, emulator, smtp, redis_timeout_s=2.0) as running:
        yield running


def test_metrics_describe_the_traffic(patient: Stack, world: World) -> None:
    stack = patient
    user, when = world.customers[0], slot(days=4)
    before = scrape(stack)
    assert value(before, "bookings_booking_conflicts_total", "bookings_booking_conflicts") == 0
    booking = stack.hold(user, world.resource, when).json()
    assert stack.hold(world.customers[1], world.resource, when).status_code == 409
    assert stack.http.get(f"/bookings/{booking['id']}", headers=stack.headers(user)).is_success
    assert stack.pay(user, booking["id"], "metrics-1").status_code == 200
    replay = stack.pay(user, booking["id"], "metrics-1")
    assert replay.headers["Idempotent-Replayed"] == "true"
    window = {"from": when[0], "to": (datetime.fromisoformat(when[1]) + timedelta(days=1))
              .isoformat()}  # fmt: skip
    for _ in range(2):
        r = stack.http.get(
            f"/resources/{world.other_resource}/availability", params=window,
            headers=stack.headers(user),
        )  # fmt: skip
        assert r.status_code == 200, r.text
    stack.http.get(f"/no/such/{booking['id']}")
    m = scrape(stack)
    requests = "bookings_http_requests"
    assert value(m, f"{requests}_total", requests, route="/bookings", method="POST",
                 status="201") == 1  # fmt: skip
    assert value(m, f"{requests}_total", requests, route="/bookings", status="409") == 1
    assert value(m, f"{requests}_total", requests, route="/bookings/{booking_id}", status="200")
    assert value(m, f"{requests}_total", requests, route="unmatched", status="404") == 1
    routes = {s.labels["route"] for s in m[requests]}
    assert not any(re.search(r"/\d+", route) for route in routes), routes
    latency = "bookings_http_request_duration_seconds"
    assert value(m, f"{latency}_count", latency, route="/bookings/{booking_id}/payment") == 2
    assert value(m, f"{latency}_bucket", latency, route="/bookings", le="+Inf") == 2
    assert value(m, "bookings_booking_conflicts_total", "bookings_booking_conflicts") == 1
    assert value(m, "bookings_payment_attempts_total", "bookings_payment_attempts") == 1
    assert value(m, "bookings_payment_outcomes_total", "bookings_payment_outcomes",
                 outcome="succeeded") == 1  # fmt: skip
    assert value(m, "bookings_idempotency_total", "bookings_idempotency",
                 outcome="replayed") == 1  # fmt: skip
    assert value(m, "bookings_cache_requests_total", "bookings_cache_requests", result="miss") == 1
    assert value(m, "bookings_cache_requests_total", "bookings_cache_requests", result="hit") == 1
    s = stack.settings
    assert value(m, "bookings_db_pool_size") == s.db_pool_size + s.db_max_overflow
    assert value(m, "bookings_db_pool_in_use") is not None
    assert value(m, "bookings_redis_up") == 1
    for dependency in ("database", "redis", "provider"):
        assert value(m, "bookings_circuit_breaker_state", dependency=dependency) == 0
    assert value(m, "bookings_outbox_backlog") is not None
    assert value(m, "bookings_unsafe_variant") == 0
    declared = {family.name for family in Metrics().registry.collect()}
    assert len(declared) >= 20
    assert declared <= set(m), declared - set(m)


# ---------------------------------------------------------------- admin


def admin_routes() -> list[tuple[str, str]]:
    return [(method, route.path) for route in admin.router.routes if isinstance(route, APIRoute)
            for method in route.methods or ()]  # fmt: skip


def concrete(path: str) -> str:
    for name, example in (("{booking_id}", "1"), ("{payment_id}", "1"), ("{event_id}", "evt_1"),
                          ("{name}", PAYMENT_IDEMPOTENCY_ENFORCED),
                          ("{user_id}", "987654321")):  # fmt: skip
        path = path.replace(name, example)
    return path


def test_every_admin_route_refuses_callers_without_admin_rights(stack: Stack, world: World) -> None:
    routes = admin_routes()
    assert len(routes) == 10
    admin_user = stack.tokens.issue(Principal(world.admin, Role.ADMIN, Tier.NORMAL)).access_token
    customer = stack.headers(world.customers[0])
    for method, path in routes:
        url = concrete(path)
        body = {"json": {"enabled": True}} if method == "PUT" else {}

        def call(
            headers: dict[str, str], method: str = method, url: str = url, body: Any = body
        ) -> httpx.Response:
            return stack.http.request(method, url, headers=headers, **body)

        assert_error(call({}), 401, "not_authenticated")
        assert_error(call({"X-Admin-Token": ADMIN_TOKEN + "x"}), 403, "admin_required")
        assert_error(call({"X-Admin-Token": ""}), 403, "admin_required")
        assert_error(call(customer), 403, "admin_required")
        # The same call with admin rights gets past the door (404 for missing rows is fine).
        for allowed in (stack.admin, bearer(admin_user)):
            assert call(allowed).status_code not in (401, 403), (method, path)
    assert stack.http.get("/admin/flags", headers=bearer(admin_user)).status_code == 200


def test_admin_cancel_of_a_paid_booking_refunds_it(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    paid = hold_and_pay(stack, world.customers[0], world.resource, 10, "cancel-1")
    booking, intent = paid["booking_id"], paid["payment_intent"]
    assert stack.emulator.ledger()["refunds"] == []
    r = stack.http.post(f"/admin/bookings/{booking}/cancel", headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "canceled"
    refunds = stack.emulator.ledger()["refunds"]
    assert [(x["payment_intent"], x["amount"]) for x in refunds] == [(intent, paid["amount_cents"])]
    assert pg.scalar("SELECT status FROM bookings WHERE id = :b", b=booking) == "canceled"
    assert pg.scalar("SELECT status FROM payments WHERE booking_id = :b", b=booking) == "refunded"
    assert audit(pg) == [("admin:0", "cancel_booking", f"booking:{booking}")]
    # The range is free again.
    assert stack.hold(world.customers[1], world.resource, slot(days=2, hour=10)).status_code == 201
    assert_error(
        stack.http.post("/admin/bookings/999999/cancel", headers=stack.admin),
        404, "booking_not_found",
    )  # fmt: skip


def test_admin_refund_of_a_payment(pg: ScratchDatabase, stack: Stack, world: World) -> None:
    paid = hold_and_pay(stack, world.customers[0], world.resource, 12, "refund-1")
    payment = paid["payment_id"]
    r = stack.http.post(f"/admin/payments/{payment}/refund", headers=stack.admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"payment_id": payment, "status": "refunded"}
    intent = next(pi for pi in stack.intents(paid["booking_id"]))
    assert intent["amount_refunded"] == intent["amount_received"] == paid["amount_cents"]
    assert pg.scalar("SELECT status FROM bookings WHERE id = :b", b=paid["booking_id"]) == (
        "canceled"
    )
    again = stack.http.post(f"/admin/payments/{payment}/refund", headers=stack.admin)
    assert_error(again, 409, "not_refundable")
    assert len(stack.emulator.ledger()["refunds"]) == 1
    assert audit(pg) == [("admin:0", "refund_payment", f"payment:{payment}")]


def test_admin_resend_sends_a_second_confirmation(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    paid = hold_and_pay(stack, world.customers[0], world.resource, 14, "resend-1")
    booking = paid["booking_id"]
    subject = f"Booking #{booking} confirmed"
    assert stack.wait_for(lambda: stack.smtp.subjects() == [subject])
    r = stack.http.post(f"/admin/bookings/{booking}/resend-confirmation", headers=stack.admin)
    assert r.status_code == 202, r.text
    assert stack.wait_for(lambda: stack.smtp.subjects() == [subject, subject])
    assert [m["To"] for m in stack.smtp.messages] == ["c0@example.test"] * 2
    held = stack.hold(world.customers[1], world.resource, slot(days=3)).json()
    refused = stack.http.post(
        f"/admin/bookings/{held['id']}/resend-confirmation", headers=stack.admin
    )
    assert_error(refused, 409, "not_confirmed")
    assert audit(pg) == [("admin:0", "resend_confirmation", f"booking:{booking}")]


def test_admin_lists_failed_webhooks_and_replays_them(pg: ScratchDatabase, stack: Stack) -> None:
    assert stack.http.get("/admin/webhooks/failed", headers=stack.admin).json() == []
    event = {"id": "evt_failed_1", "object": "event", "type": "customer.created",
             "data": {"object": {"id": "cus_1", "object": "customer"}}}  # fmt: skip
    pg.query(
        "INSERT INTO webhook_events (id, type, status, attempts, deliveries, last_error, "
        "payload, received_at) VALUES (:i, :t, 'failed', 3, 3, 'DbUnavailable: boom', :p, now()) "
        "RETURNING id",
        i=event["id"], t=event["type"], p=json.dumps(event),
    )  # fmt: skip
    listed = stack.http.get("/admin/webhooks/failed", headers=stack.admin)
    assert listed.status_code == 200
    [row] = listed.json()
    assert (row["id"], row["attempts"], row["last_error"]) == (
        "evt_failed_1", 3, "DbUnavailable: boom",
    )  # fmt: skip
    replay = stack.http.post("/admin/webhooks/evt_failed_1/replay", headers=stack.admin)
    assert replay.json() == {"event_id": "evt_failed_1", "outcome": "ignored"}
    assert stack.http.get("/admin/webhooks/failed", headers=stack.admin).json() == []
    assert pg.scalar("SELECT status FROM webhook_events WHERE id = 'evt_failed_1'") == "ignored"
    missing = stack.http.post("/admin/webhooks/evt_nope/replay", headers=stack.admin)
    assert_error(missing, 404, "event_not_found")
    assert audit(pg) == [("admin:0", "replay_webhook", "event:evt_failed_1")]


def test_flags_are_read_and_flipped_at_runtime(
    pg: ScratchDatabase, stack: Stack, world: World
) -> None:
    flags = stack.http.get("/admin/flags", headers=stack.admin)
    assert flags.json() == DEFAULTS
    user = world.customers[0]
    paid = hold_and_pay(stack, user, world.resource, 16, "flag-key")
    replayed = stack.pay(user, paid["booking_id"], "flag-key")
    assert replayed.headers.get("Idempotent-Replayed") == "true"
    assert replayed.json() == paid

    def flip(enabled: bool) -> dict[str, bool]:
        r = stack.http.put(f"/admin/flags/{PAYMENT_IDEMPOTENCY_ENFORCED}",
                           headers=stack.admin, json={"enabled": enabled})  # fmt: skip
        assert r.status_code == 200, r.text
        found: dict[str, bool] = r.json()
        return found

    assert flip(False) == {**DEFAULTS, PAYMENT_IDEMPOTENCY_ENFORCED: False}
    executed = stack.pay(user, paid["booking_id"], "flag-key")
    assert "Idempotent-Replayed" not in executed.headers
    assert_error(executed, 409, "booking_already_paid")
    full = stack.http.get("/health/full").json()
    assert full["flags"][PAYMENT_IDEMPOTENCY_ENFORCED] is False
    assert flip(True) == DEFAULTS
    back = stack.pay(user, paid["booking_id"], "flag-key")
    assert back.headers.get("Idempotent-Replayed") == "true"
    assert back.json() == paid
    assert_error(
        stack.http.put("/admin/flags/NO_SUCH_FLAG", headers=stack.admin, json={"enabled": False}),
        404, "unknown_flag",
    )  # fmt: skip
    assert pg.query("SELECT name, enabled, updated_by FROM feature_flags") == [
        (PAYMENT_IDEMPOTENCY_ENFORCED, True, "admin:0")
    ]
    subject = f"flag:{PAYMENT_IDEMPOTENCY_ENFORCED}"
    assert audit(pg) == [("admin:0", "set_flag", subject)] * 2
    details = [json.loads(d) for (d,) in pg.query("SELECT detail FROM audit_log ORDER BY id")]
    assert details == [{"enabled": False}, {"enabled": True}]


# ---------------------------------------------------------------- rate limits


def test_premium_customers_get_a_higher_rate_limit(
    pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink, world: World
) -> None:
    if time.time() % 60 > 45:  # the limiter's window is the wall-clock minute
        time.sleep(61 - time.time() % 60)
    with Stack(pg, emulator, smtp, rate_limit_per_minute=5) as stack:

        def holds(user: int, premium: bool, n: int, day: int) -> list[httpx.Response]:
            return [
                stack.http.post("/bookings", headers=stack.headers(user, premium=premium), json={
                    "resource_id": world.resource, "starts_at": slot(day, 8 + i, 1)[0],
                    "ends_at": slot(day, 8 + i, 1)[1]})
                for i in range(n)
            ]  # fmt: skip

        normal = holds(world.customers[0], False, 6, day=1)
        premium = holds(world.premium, True, 11, day=2)
        metrics = scrape(stack)
    assert [r.status_code for r in normal] == [201] * 5 + [429]
    assert_error(normal[-1], 429, "rate_limited")
    assert 1 <= int(normal[-1].headers["Retry-After"]) <= 60
    assert [r.status_code for r in premium] == [201] * 10 + [429]
    assert value(metrics, "bookings_rate_limited_total", "bookings_rate_limited") == 2


# ---------------------------------------------------------------- schema and health


EXPECTED_ROUTES = {
    ("POST", "/auth/token"), ("POST", "/auth/refresh"), ("GET", "/resources"),
    ("GET", "/resources/{resource_id}/availability"), ("POST", "/bookings"),
    ("GET", "/bookings/{booking_id}"), ("POST", "/bookings/{booking_id}/payment"),
    ("POST", "/webhooks/stripe"), ("POST", "/admin/bookings/{booking_id}/cancel"),
    ("POST", "/admin/payments/{payment_id}/refund"),
    ("POST", "/admin/bookings/{booking_id}/resend-confirmation"),
    ("GET", "/admin/webhooks/failed"), ("POST", "/admin/webhooks/{event_id}/replay"),
    ("GET", "/admin/flags"), ("PUT", "/admin/flags/{name}"),
    ("POST", "/admin/users/{user_id}/revoke-tokens"), ("POST", "/admin/users/{user_id}/lock"),
    ("POST", "/admin/users/{user_id}/unlock"), ("GET", "/health/live"),
    ("GET", "/health/ready"), ("GET", "/health/full"),
}  # fmt: skip


def test_openapi_lists_every_route(stack: Stack) -> None:
    r = stack.http.get("/openapi.json")
    assert r.status_code == 200
    schema = r.json()
    published = {(m.upper(), path) for path, ops in schema["paths"].items() for m in ops}
    assert published == EXPECTED_ROUTES
    served = {
        (method, route.path)
        for module in (admin, auth, bookings, health, resources, webhooks)
        for route in module.router.routes
        if getattr(route, "include_in_schema", False)
        for method in getattr(route, "methods", ())
    }
    assert served == published
    assert "ErrorOut" in schema["components"]["schemas"]
    assert "401" in schema["paths"]["/bookings"]["post"]["responses"]


def test_health_endpoints_answer_with_their_documented_shapes(patient: Stack) -> None:
    stack = patient
    assert stack.http.get("/health/live").json() == {"status": "ok"}
    ready = stack.http.get("/health/ready")
    assert ready.status_code == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"database", "redis", "provider", "schema"}
    assert all(check["ok"] is True for check in body["checks"].values()), body
    assert isinstance(body["checks"]["database"]["latency_ms"], float)
    full = stack.http.get("/health/full").json()
    assert set(full) == {"status", "checks", "unsafe_variant", "flags", "breakers", "db_pool"}
    assert (full["status"], full["unsafe_variant"], full["flags"]) == ("ready", False, DEFAULTS)
    assert full["breakers"] == {"database": "closed", "redis": "closed", "provider": "closed"}
    s = stack.settings
    assert full["db_pool"]["size"] == s.db_pool_size + s.db_max_overflow
    assert 0 <= full["db_pool"]["in_use"] <= full["db_pool"]["size"]
    assert full["db_pool"]["public_share"] == full["db_pool"]["size"] - s.db_pool_reserved


def closed_port() -> int:
    port = free_port()
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
        pytest.fail(f"port {port} should be closed")
    return port


def test_readiness_reports_what_is_down(
    pg: ScratchDatabase, emulator: EmulatorServer, smtp: SmtpSink
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    with Stack(pg, emulator, smtp, stripe_api_base=dead, provider_max_retries=0) as stack:
        degraded = stack.http.get("/health/ready")
    assert degraded.status_code == 200
    assert degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"]["provider"]["ok"] is False
    assert degraded.json()["checks"]["database"]["ok"] is True
    no_db = f"postgresql://postgres@127.0.0.1:{closed_port()}/nothing"
    with Stack(pg, emulator, smtp, database_url=no_db) as stack:
        live = stack.http.get("/health/live")
        unready = stack.http.get("/health/ready")
        full = stack.http.get("/health/full")
    assert live.status_code == 200
    assert unready.status_code == 503
    assert unready.json()["status"] == "unavailable"
    assert unready.json()["checks"]["database"]["ok"] is False
    assert unready.json()["checks"]["schema"] == {"ok": False}
    assert full.status_code == 503

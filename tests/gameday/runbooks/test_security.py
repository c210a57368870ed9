"""The ``security`` runbook against the reference service, with an intrusion made for real.

An "attacker" address guesses passwords, then uses two stolen accounts; the accounts' owners
and a bystander use the service from their own addresses. Addresses reach the service as
X-Forwarded-For through the stack's ingress (whose workers trust loopback as a proxy, as a
deployment trusts its load balancer), and the service's access log records them. The
runbook must rank the attacker first, propose revoking exactly the two accounts it used
(not the bystander), change nothing read-only, refuse on drift, and after the apply every
token of those accounts (access and refresh, on every worker) is refused while a fresh
login works; a second run finds nothing to do.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from typer.testing import CliRunner

from gameday.cli import app
from gameday.drill.target import CUSTOMERS
from gameday.stack.stack import Stack
from tests.gameday.runbooks.support import latest_plan, query, said, wait_for

pytestmark = [pytest.mark.slow]
runner = CliRunner()
ATTACKER = "198.51.100.7"
OWNER = "192.0.2.10"
BYSTANDER = "192.0.2.20"
GUESSES = 12


@dataclass
class Session:
    user_id: int
    access: str
    refresh: str


def _http(stack: Stack, source: str) -> httpx.Client:
    return httpx.Client(base_url=stack.ingress_url, timeout=10, headers={"X-Forwarded-For": source})


def _login(stack: Stack, source: str, email: str) -> Session:
    with _http(stack, source) as http:
        answer = http.post(
            "/auth/token", json={"email": email, "password": stack.secrets.gameday_password}
        )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    claims = orjson.loads(_payload(body["access_token"]))
    return Session(int(claims["sub"]), body["access_token"], body["refresh_token"])


def _payload(token: str) -> bytes:
    part = token.split(".")[1]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _use(stack: Stack, source: str, s: Session, times: int = 3) -> list[int]:
    with _http(stack, source) as http:
        return [
            http.get("/resources", headers={"Authorization": f"Bearer {s.access}"}).status_code
            for _ in range(times)
        ]


def _logged(stack: Stack, source: str) -> int:
    rows = query(stack.database_url, "SELECT COUNT(*) FROM access_log WHERE source = :s", s=source)
    return int(asyncio.run(rows)[0][0])


def _valid_after(stack: Stack) -> dict[int, Any]:
    rows = asyncio.run(
        query(stack.database_url, "SELECT id, tokens_valid_after FROM users ORDER BY id")
    )
    return {int(r[0]): r[1] for r in rows}


@dataclass
class Intrusion:
    stack: Stack
    stolen: list[Session]
    owner: Session
    bystander: Session


@pytest.fixture(scope="module")
def intrusion() -> Iterator[Intrusion]:
    with Stack() as stack:
        with _http(stack, ATTACKER) as http:
            for i in range(GUESSES):
                wrong = http.post(
                    "/auth/token", json={"email": CUSTOMERS[5], "password": f"guess-{i}"}
                )
                assert wrong.status_code == 401, wrong.text
        stolen = [_login(stack, ATTACKER, CUSTOMERS[0]), _login(stack, ATTACKER, CUSTOMERS[1])]
        for s in stolen:
            assert _use(stack, ATTACKER, s) == [200, 200, 200]
        owner = _login(stack, OWNER, CUSTOMERS[0])
        bystander = _login(stack, BYSTANDER, CUSTOMERS[2])
        assert _use(stack, OWNER, owner) == [200, 200, 200]
        assert _use(stack, BYSTANDER, bystander) == [200, 200, 200]
        # Written in batches about once a second by each worker.
        wanted = GUESSES + 2 + 6
        assert wait_for(lambda: _logged(stack, ATTACKER) >= wanted)
        yield Intrusion(stack, stolen, owner, bystander)


def _runbook(stack: Stack, out: Path, *args: str) -> Any:
    return runner.invoke(
        app,
        ["runbook", "security", "--stack", stack.id, "--out", str(out), "--who", "tester", *args],
    )


def test_unscoped_it_ranks_the_guessing_source_first_and_proposes_nothing(
    intrusion: Intrusion, tmp_path: Path
) -> None:
    done = _runbook(intrusion.stack, tmp_path)
    assert done.exit_code == 1, done.output
    text = said(done)
    assert "1 source(s) with 10 or more refused authentications" in text
    assert f"'source': '{ATTACKER}'" in text
    assert f"'failed_logins': {GUESSES}" in text
    assert OWNER not in text.split("finding:")[1]  # ranked, but not a finding
    assert f"--source {ATTACKER}" in text
    assert latest_plan(tmp_path)["changes"] == []


def test_a_source_is_contained_exactly_and_once(intrusion: Intrusion, tmp_path: Path) -> None:
    stack = intrusion.stack
    stolen_ids = sorted({s.user_id for s in intrusion.stolen})
    before = _valid_after(stack)

    found = _runbook(stack, tmp_path, "--source", ATTACKER)
    assert found.exit_code == 1, found.output
    plan = latest_plan(tmp_path)
    assert [(c["action"], c["detail"]["user_id"]) for c in plan["changes"]] == [
        ("revoke_tokens", u) for u in stolen_ids
    ]
    assert plan["scope"] == {"source": ATTACKER, "since_s": 3600.0}
    assert "GET /resources" in said(found)
    # Read-only: nothing revoked, the stolen tokens still work.
    assert _valid_after(stack) == before
    assert _use(stack, ATTACKER, intrusion.stolen[0], times=1) == [200]

    # The plan carries its scope: repeating --source with --apply is a usage error.
    mixed = _runbook(stack, tmp_path, "--apply", "--plan", plan["digest"], "--source", ATTACKER)
    assert mixed.exit_code == 2

    applied = _runbook(stack, tmp_path, "--apply", "--plan", plan["digest"], "--yes")
    assert applied.exit_code == 0, applied.output
    assert f"accounts_to_contain: {len(stolen_ids)} → 0" in said(applied)
    after = _valid_after(stack)
    assert {u for u, v in after.items() if v is not None} == set(stolen_ids)
    assert after[intrusion.bystander.user_id] is None

    # Every worker refuses them within the revocation cache's TTL (2 s), access and refresh.
    def refused_everywhere() -> bool:
        return all(
            _refused(worker, s) for worker in stack.worker_urls().values() for s in intrusion.stolen
        )

    assert wait_for(refused_everywhere, timeout_s=6)
    assert _refused(stack.ingress_url, intrusion.owner)  # the owner's session too, by design
    with _http(stack, ATTACKER) as http:
        renewed = http.post("/auth/refresh", json={"refresh_token": intrusion.stolen[0].refresh})
    assert (renewed.status_code, renewed.json()["error"]) == (401, "token_revoked")
    # The bystander is untouched and the owner can log in again.
    assert _use(stack, BYSTANDER, intrusion.bystander, times=1) == [200]
    fresh = _login(stack, OWNER, CUSTOMERS[0])
    assert _use(stack, OWNER, fresh, times=1) == [200]

    audit = [orjson.loads(line) for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert audit[-1]["outcome"] == "verified"
    assert audit[-1]["invariants_before"] == {"accounts_to_contain": len(stolen_ids)}
    assert audit[-1]["invariants_after"] == {"accounts_to_contain": 0}

    # The attacker tries again: refused, and that is evidence now. Nothing left to do.
    assert _use(stack, ATTACKER, intrusion.stolen[1], times=2) == [401, 401]
    assert wait_for(lambda: _presented(stack) >= 3, timeout_s=5)  # with the refresh
    again = _runbook(stack, tmp_path, "--source", ATTACKER)
    assert again.exit_code == 0, again.output
    assert latest_plan(tmp_path)["changes"] == []
    assert "revoked tokens were presented" in said(again)


def _refused(base_url: str, s: Session) -> bool:
    answer = httpx.get(
        f"{base_url}/resources", headers={"Authorization": f"Bearer {s.access}"}, timeout=10
    )
    return answer.status_code == 401 and answer.json()["error"] == "token_revoked"


def _presented(stack: Stack) -> int:
    rows = asyncio.run(
        query(
            stack.database_url,
            "SELECT COUNT(*) FROM access_log WHERE source = :s AND status = 401 "
            "AND user_id IS NOT NULL",
            s=ATTACKER,
        )
    )
    return int(rows[0][0])


def test_drift_a_new_account_used_between_plan_and_apply_is_refused(
    intrusion: Intrusion, tmp_path: Path
) -> None:
    stack = intrusion.stack
    source = "198.51.100.99"
    first = _login(stack, source, CUSTOMERS[3])
    _use(stack, source, first, times=1)
    assert wait_for(lambda: _logged(stack, source) >= 2)
    _runbook(stack, tmp_path, "--source", source)
    plan = latest_plan(tmp_path)
    assert [c["subject"] for c in plan["changes"]] == [f"user:{first.user_id}"]

    second = _login(stack, source, CUSTOMERS[4])
    _use(stack, source, second, times=1)
    assert wait_for(lambda: _logged(stack, source) >= 4)
    refused = _runbook(stack, tmp_path, "--apply", "--plan", plan["digest"], "--yes")
    assert refused.exit_code == 5, refused.output
    assert f"newly needed: user:{second.user_id}" in said(refused)
    assert _valid_after(stack)[first.user_id] is None  # nothing applied


def test_a_user_is_revoked_on_request_and_bad_scopes_are_refused(
    intrusion: Intrusion, tmp_path: Path
) -> None:
    stack = intrusion.stack
    user = intrusion.bystander.user_id
    found = _runbook(stack, tmp_path, "--user", str(user))
    assert found.exit_code == 1, found.output
    assert f"user {user} was used from 1 source(s)" in said(found)
    plan = latest_plan(tmp_path)
    assert [c["subject"] for c in plan["changes"]] == [f"user:{user}"]
    applied = _runbook(stack, tmp_path, "--apply", "--plan", plan["digest"], "--yes")
    assert applied.exit_code == 0, applied.output
    assert wait_for(lambda: _refused(stack.ingress_url, intrusion.bystander), timeout_s=6)
    assert _runbook(stack, tmp_path, "--user", str(user)).exit_code == 0

    assert _runbook(stack, tmp_path, "--source", "not-an-address").exit_code == 2
    missing = _runbook(stack, tmp_path, "--user", "987654")
    assert missing.exit_code == 3
    assert "no user 987654" in said(missing)


def test_lock_refuses_the_accounts_logins_until_unlocked(
    intrusion: Intrusion, tmp_path: Path
) -> None:
    """A leaked password: ``--lock`` plans a lock (tokens revoked, logins refused), and an
    account revoked but not locked still needs one under ``--lock``."""
    stack = intrusion.stack
    source = "203.0.113.77"
    victim = _login(stack, source, CUSTOMERS[7])
    _use(stack, source, victim, times=1)
    assert wait_for(lambda: _logged(stack, source) >= 2)

    found = _runbook(stack, tmp_path, "--user", str(victim.user_id), "--lock")
    assert found.exit_code == 1, found.output
    plan = latest_plan(tmp_path)
    assert [(c["action"], c["subject"]) for c in plan["changes"]] == [
        ("lock_account", f"user:{victim.user_id}")
    ]
    applied = _runbook(stack, tmp_path, "--apply", "--plan", plan["digest"], "--yes")
    assert applied.exit_code == 0, applied.output
    assert "accounts_to_contain: 1 → 0" in said(applied)
    assert wait_for(lambda: _refused(stack.ingress_url, victim), timeout_s=6)
    credentials = {"email": CUSTOMERS[7], "password": stack.secrets.gameday_password}
    with _http(stack, source) as http:
        again = http.post("/auth/token", json=credentials)
    assert (again.status_code, again.json()["error"]) == (403, "account_locked")
    assert _runbook(stack, tmp_path, "--user", str(victim.user_id), "--lock").exit_code == 0

    # Unlocked by an operator: the same account, revoked but not locked, needs a lock again.
    admin = {"X-Admin-Token": stack.secrets.admin_token}
    unlocked = httpx.post(f"{stack.ingress_url}/admin/users/{victim.user_id}/unlock",
                          headers=admin, json={"reason": "owner reset"}, timeout=10)  # fmt: skip
    assert unlocked.status_code == 200, unlocked.text
    assert _runbook(stack, tmp_path, "--user", str(victim.user_id)).exit_code == 0
    assert _runbook(stack, tmp_path, "--user", str(victim.user_id), "--lock").exit_code == 1
    assert latest_plan(tmp_path)["changes"][0]["action"] == "lock_account"


def test_requests_are_logged_without_secrets(intrusion: Intrusion) -> None:
    rows = asyncio.run(
        query(
            intrusion.stack.database_url,
            "SELECT source, method, route, status, user_id, request_id FROM access_log "
            "WHERE source = :s ORDER BY at, id",
            s=ATTACKER,
        )
    )
    logins = [r for r in rows if r[2] == "/auth/token"]
    assert [r[3] for r in logins[:GUESSES]] == [401] * GUESSES
    assert {r[2] for r in rows} >= {"/auth/token", "/resources"}
    text = repr(rows)
    for s in intrusion.stolen:
        assert s.access not in text
        assert s.refresh not in text
    assert "guess-" not in text
    assert "@" not in text
    assert all(r[5] for r in rows)  # every row carries its request id

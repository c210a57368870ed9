"""The fault scenarios' criteria fail against a target missing the safeguard they test,
all on one stack with those safeguards off:
- scenario 5 with the Redis fallback switched off;
- scenario 6 with a minute of leeway on token expiry (an expired session still pays);
- scenario 7 without the request deadline (and with requests queueing for connections);
- scenario 8 with a 30 s provider timeout, five retries and no provider breaker (the cut
  instance multiplies its connection attempts instead of giving up).
(Scenarios 1-4 are proven able to fail by the unsafe variant, test_drill_unsafe.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gameday.cli_drill import embedded_target
from gameday.drill.engine import Drill, DrillOptions
from gameday.drill.scenario import load_scenarios
from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack

pytestmark = [pytest.mark.slow, pytest.mark.drill]


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # Every bound off, so requests wait behind the slow database instead of being refused
    # within the gate: no deadline, a pool that lets requests queue (its 1.5 s checkout
    # bound), a connect timeout longer than a handshake through 1.5 s of latency (1 s would
    # answer a fast 503 for each new connection), a long statement timeout (a hold is six
    # round trips) and no breaker (the timeouts would open it).
    options = StackOptions(service_env={
        "BOOKINGS_REQUEST_DEADLINE_S": "0", "BOOKINGS_DB_POOL_TIMEOUT_S": "10",
        "BOOKINGS_DB_CONNECT_TIMEOUT_S": "30", "BOOKINGS_DB_STATEMENT_TIMEOUT_S": "60",
        "BOOKINGS_DB_BREAKER_FAILURES": "1000000",
        "BOOKINGS_JWT_LEEWAY_S": "60",
        "BOOKINGS_PROVIDER_TIMEOUT_S": "30", "BOOKINGS_PROVIDER_MAX_RETRIES": "5",
        "BOOKINGS_PROVIDER_BREAKER_FAILURES": "1000000",
    })  # fmt: skip
    with Stack(options) as stack:
        admin = {"X-Admin-Token": stack.secrets.admin_token}
        flag = f"{stack.ingress_url}/admin/flags/REDIS_OPTIONAL_FALLBACK"
        assert httpx.put(flag, json={"enabled": False}, headers=admin).status_code == 200
        # Scenario 5 last: without the fallback, Redis's open breaker still refuses holds
        # for a few seconds after the outage, which the next scenario would measure.
        by_id = {s.id: s for s in load_scenarios()}
        scenarios = [by_id[sid] for sid in (6, 7, 8, 5)]
        out: Path = tmp_path_factory.mktemp("broken") / "report"
        drill = Drill(embedded_target(stack), DrillOptions(seed=9, out=out), stack=stack)
        yield asyncio.run(drill.run(scenarios))


def _failed(journal: dict[str, Any], sid: int) -> dict[str, Any]:
    scenario = next(s for s in journal["scenarios"] if s["id"] == sid)
    assert scenario["verdict"] == "fail", (scenario["errors"], scenario["criteria"])
    return {c["measure"]: c for c in scenario["criteria"] if c["verdict"] == "fail"}


def test_redis_down_without_the_fallback_fails_the_error_budget(journal: dict[str, Any]) -> None:
    failed = _failed(journal, 5)
    assert failed["outage.during.error_rate"]["measured"] > 0.01
    flags = next(c for c in journal["preflight"] if c["check"] == "feature flags")
    assert flags["verdict"] == "fail"
    assert "REDIS_OPTIONAL_FALLBACK" in flags["detail"]


def test_a_slow_database_without_the_deadline_fails_the_latency_gate(
    journal: dict[str, Any],
) -> None:
    failed = _failed(journal, 7)
    # Without the deadline, requests wait on the slow database: slower than the gate, or
    # not answered within the client's 10 s at all.
    slow = failed.get("slow.during.p95_s", {}).get("measured") or 0
    hung = failed.get("slow.during.no_answer", {}).get("measured") or 0
    assert slow > 2.5 or hung > 0, failed


def test_an_expired_token_accepted_fails_the_auth_criteria(journal: dict[str, Any]) -> None:
    failed = _failed(journal, 6)
    assert failed["expiry.token_expiry_flow.answer_401"]["measured"] < 5
    assert failed["expiry.token_expiry_flow.intents_while_expired"]["measured"] > 0


def test_unbounded_provider_retries_fail_the_amplification_criterion(
    journal: dict[str, Any],
) -> None:
    failed = _failed(journal, 8)
    # Five SDK retries of each call (and every payment retried by its client) multiply the
    # connections the cut instance opens to the provider per payment attempt.
    assert failed["provider_cut.amplification"]["measured"] > 4, failed

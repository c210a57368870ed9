"""``--target PROFILE.yaml``: the same drill against a system the harness did not start —
here a stack started by the test, described only by a profile and environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack
from tests.gameday.drill.support import DrillRun, run_drill

pytestmark = [pytest.mark.slow, pytest.mark.drill]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(StackOptions(monitoring=False)) as running:
        yield running


@pytest.fixture(scope="module")
def drill(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillRun]:
    where = tmp_path_factory.mktemp("profile")
    profile = where / "target.yaml"
    profile.write_text(
        f"name: a running bookings service\n"
        f"base_url: {stack.ingress_url}\n"
        f"instances: {{{', '.join(f'{n}: {u!r}' for n, u in stack.worker_urls().items())}}}\n"
        "password_env: T_PASSWORD\nadmin_token_env: T_ADMIN\ndatabase_url_env: T_DB\n"
        f"provider: {{url: {stack.provider_url!r}, key_env: T_KEY}}\n"
        "webhook_secret_env: T_WHSEC\n"
    )
    env = {"T_PASSWORD": stack.secrets.gameday_password, "T_ADMIN": stack.secrets.admin_token,
           "T_DB": stack.database_url, "T_KEY": stack.secrets.provider_key,
           "T_WHSEC": stack.webhook_secret}  # fmt: skip
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield run_drill(where / "report", "--target", str(profile), "-s", "1", "-s", "3", "-s", "4")
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_scenarios_without_faults_pass_against_the_profile(drill: DrillRun) -> None:
    assert drill.scenario(1)["verdict"] == "pass", drill.scenario(1)
    assert drill.scenario(3)["verdict"] == "pass", drill.scenario(3)
    assert drill.journal["target"]["embedded"] is False


def test_a_fault_scenario_is_unknown_not_passed_without_fault_hooks(drill: DrillRun) -> None:
    outage = drill.scenario(4)
    assert outage["verdict"] == "unknown"
    assert any("fault" in e for e in outage["errors"]), outage["errors"]
    assert drill.code == 1


def test_no_secret_from_the_environment_reaches_the_journal(drill: DrillRun, stack: Stack) -> None:
    text = (drill.out / "journal.json").read_text()
    for secret in (stack.secrets.gameday_password, stack.secrets.admin_token, stack.webhook_secret):
        assert secret not in text
    assert Path(drill.out / "report.md").exists()

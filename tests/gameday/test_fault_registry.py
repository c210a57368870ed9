"""Fault kinds and the registry against a hand-written fake context (the real stack's
faults are tested in tests/gameday/stack)."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gameday.faults import FaultError, FaultRegistry, build
from gameday.faults.tcp import Latency


class FakeStack:
    """Records what faults do instead of doing it."""

    def __init__(self) -> None:
        self.toxics: dict[str, dict[str, Any]] = {}
        self.options: dict[str, Any] = {}
        self.fail_heal = False
        self.fail_link = ""
        self.seq = 0

    def links(self, target: str) -> list[str]:
        names = ["w1.db", "w1.redis", "w2.db", "w2.redis"]
        found = [n for n in names if target in (n, n.split(".")[0], n.split(".")[1], "all")]
        if not found:
            raise FaultError(f"no link {target}")
        return found

    def proxy_add_toxic(self, link: str, kind: str, params: Mapping[str, Any]) -> str:
        if link == self.fail_link:
            raise FaultError(f"{link}: proxy refused")
        self.seq += 1
        self.toxics[f"t{self.seq}"] = {"link": link, "kind": kind, **params}
        return f"t{self.seq}"

    def proxy_remove_toxic(self, link: str, toxic_id: str) -> None:
        if self.fail_heal:
            raise RuntimeError("proxy unreachable")
        self.toxics.pop(toxic_id, None)

    def process_names(self, target: str) -> list[str]:
        return [target]

    def pid_of(self, part: str) -> int | None:
        return None

    def restart(self, part: str) -> None: ...

    def ensure_running(self, part: str) -> None: ...

    def spawn_load(self, argv: list[str], name: str) -> int:
        return 0

    def set_client_option(self, name: str, value: Any) -> None:
        self.options[name] = value

    def budget_s(self) -> float:
        return 1.0

    def data_dir(self) -> str:
        return "/tmp"  # noqa: S108 - never written to by these tests


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("nope", {}, "unknown fault kind 'nope'"),
        ("latency", {"speed": 1}, "unknown parameter 'speed'"),
        ("latency", {"ms": "fast"}, "ms must be float"),
        ("latency", {"ms": 10, "jitter_ms": 20}, "jitter_ms must be between 0 and ms"),
        ("loss", {"fraction": 2}, "fraction must be between 0 and 1"),
        ("loss", {"mode": "vanish"}, "mode: drop, reset or stall"),
        ("reset_peer", {}, "give after_bytes or after_ms"),
        ("token_expiry", {"ttl_s": 0}, "ttl_s must be between 1 and 3600"),
        ("bandwidth", {"direction": "sideways"}, "direction must be one of"),
    ],
)
def test_bad_fault_descriptions_are_refused_with_the_field_named(
    kind: str, params: dict[str, Any], message: str
) -> None:
    with pytest.raises(FaultError, match=message):
        build(kind, "w1.db", params)


def test_cli_strings_become_typed_parameters() -> None:
    fault = build("latency", "w1.db", {"ms": "250", "jitter_ms": "10", "direction": "upstream"})
    assert isinstance(fault, Latency)
    assert fault == Latency(target="w1.db", ms=250.0, jitter_ms=10.0, direction="upstream")


def test_inject_then_heal_removes_exactly_its_own_toxics(tmp_path: Path) -> None:
    ctx = FakeStack()
    registry = FaultRegistry(ctx, persist_to=tmp_path / "faults.json")
    try:
        slow = registry.inject(build("latency", "db", {"ms": 50}), 60)
        down = registry.inject(build("down", "w1.redis", {}), 60)
        assert {t["link"] for t in ctx.toxics.values()} == {"w1.db", "w2.db", "w1.redis"}
        persisted = json.loads((tmp_path / "faults.json").read_text())
        assert {f["id"] for f in persisted} == {slow.id, down.id}
        registry.heal(slow.id)
        assert [t["kind"] for t in ctx.toxics.values()] == ["down"]
        with pytest.raises(FaultError, match="no active fault"):
            registry.heal(slow.id)
        assert [e.action for e in registry.timeline] == ["injected", "injected", "healed"]
    finally:
        registry.close()
    assert ctx.toxics == {}
    assert json.loads((tmp_path / "faults.json").read_text()) == []


def test_a_fault_heals_itself_at_its_deadline() -> None:
    ctx = FakeStack()
    registry = FaultRegistry(ctx)
    try:
        entry = registry.inject(build("token_expiry", "clients", {"ttl_s": 2}), 0.3)
        assert ctx.options["token_ttl_s"] == 2
        deadline = time.monotonic() + 5
        while registry.active() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert registry.active() == []
        assert ctx.options["token_ttl_s"] is None
        healed = [e for e in registry.timeline if e.action == "healed"]
        assert healed[0].fault_id == entry.id
        assert healed[0].reason == "expired"
    finally:
        registry.close()


def test_durations_are_bounded() -> None:
    registry = FaultRegistry(FakeStack(), max_duration_s=10)
    try:
        for duration in (0, -1, 11):
            with pytest.raises(FaultError, match="duration"):
                registry.inject(build("down", "w1.db", {}), duration)
    finally:
        registry.close()


def test_a_failing_heal_is_reported_and_does_not_stop_the_others() -> None:
    ctx = FakeStack()
    registry = FaultRegistry(ctx)
    registry.inject(build("down", "w1.db", {}), 60)
    registry.inject(build("token_expiry", "clients", {}), 60)
    ctx.fail_heal = True
    errors = registry.close()
    assert len(errors) == 1
    assert "proxy unreachable" in errors[0]
    assert ctx.options["token_ttl_s"] is None  # the other fault was healed
    assert [e.action for e in registry.timeline][-2:] == ["heal_failed", "healed"]


def test_a_network_fault_that_fails_on_one_link_leaves_no_toxic_on_the_others() -> None:
    ctx = FakeStack()
    ctx.fail_link = "w2.db"
    registry = FaultRegistry(ctx)
    try:
        with pytest.raises(FaultError, match="proxy refused"):
            registry.inject(build("latency", "db", {"ms": 10}), 60)
        assert ctx.toxics == {}  # w1.db's toxic was removed again
        assert registry.active() == []
    finally:
        registry.close()

"""The stack's files and names, without starting a stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gameday.stack.parts import ExternalPart
from gameday.stack.processes import StartError
from gameday.stack.state import ensure_root, running_stacks, sweep, write_state


def test_an_existing_servers_password_is_masked_where_it_is_shown() -> None:
    part = ExternalPart("db", "postgresql://drill:s3cret@127.0.0.1:5432/bookings")
    assert part.address == "postgresql://drill:***@127.0.0.1:5432/bookings"
    assert part.url.endswith("drill:s3cret@127.0.0.1:5432/bookings")
    assert ExternalPart("redis", "redis://127.0.0.1:6379/0").address == "redis://127.0.0.1:6379/0"


def test_a_shared_writable_root_is_refused_and_never_swept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shared = tmp_path / "stacks"
    shared.mkdir()
    planted = shared / "planted"
    planted.mkdir()
    # Someone else's "dead stack" listing our own pid: acting on it would kill us.
    write_state(planted, {"owner_pid": 1, "parts": {"x": {"pid": os.getpid(), "start": 0}}})
    shared.chmod(0o777)
    monkeypatch.setenv("GAMEDAY_STACK_ROOT", str(shared))
    with pytest.raises(StartError, match="not a private directory"):
        ensure_root()
    assert sweep() == []
    assert running_stacks() == []
    assert planted.exists()
    shared.chmod(0o700)
    assert ensure_root() == shared


def test_the_state_file_is_private_from_the_start(tmp_path: Path) -> None:
    write_state(tmp_path, {"secrets": {"admin_token": "x"}})
    assert (tmp_path / "state.json").stat().st_mode & 0o077 == 0
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]

"""One embedded stack per test module (it takes seconds to start), in a private root so a
test run never touches a developer's own stacks."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from gameday.stack.options import StackOptions
from gameday.stack.stack import Stack


@pytest.fixture(scope="session", autouse=True)
def stack_root() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="gameday-test-stacks-") as root:
        Path(root).chmod(0o711)  # the private PostgreSQL runs as user postgres
        previous = os.environ.get("GAMEDAY_STACK_ROOT")
        os.environ["GAMEDAY_STACK_ROOT"] = root
        yield Path(root)
        if previous is None:
            del os.environ["GAMEDAY_STACK_ROOT"]
        else:
            os.environ["GAMEDAY_STACK_ROOT"] = previous


@pytest.fixture(scope="module")
def stack(stack_root: Path) -> Iterator[Stack]:
    with Stack(StackOptions()) as running:
        yield running


@pytest.fixture
def healed(stack: Stack) -> Iterator[Stack]:
    """The stack, with every fault healed and every worker ready again after the test."""
    yield stack
    assert stack.faults is not None
    assert stack.faults.heal_all() == []
    stack.wait_ready(30)

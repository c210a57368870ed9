"""Package boundaries and public APIs, checked on the source itself."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Which top-level packages each package may import. gameday may start the emulator only as
# a process, so not even it imports stripe_emulator.
ALLOWED = {
    "gameday": {"gameday"},
    "bookings": {"bookings"},
    "stripe_emulator": {"stripe_emulator"},
}
OURS = set(ALLOWED)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_packages_import_only_what_they_may(package: str) -> None:
    offenders = {
        str(path.relative_to(SRC)): sorted(_imports(path) - ALLOWED[package])
        for path in (SRC / package).rglob("*.py")
        if _imports(path) - ALLOWED[package]
    }
    assert offenders == {}


def test_the_boundary_check_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("from bookings.domain import x\nimport stripe_emulator.app\n")
    assert _imports(bad) == {"bookings", "stripe_emulator"}


def test_stripe_emulator_all_is_complete() -> None:
    module = importlib.import_module("stripe_emulator")
    public = {name for name in vars(module) if not name.startswith("_")}
    submodules = {p.stem for p in (SRC / "stripe_emulator").glob("*.py")}
    assert set(module.__all__) == public - submodules
    for name in module.__all__:
        assert getattr(module, name) is not None

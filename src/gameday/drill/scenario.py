"""Scenarios as declarative data: one YAML file each, checked on load.

A scenario says what to do (probes from :mod:`gameday.drill.probes` and fault injections,
in order), under which background load, which invariant checkers judge it, which alerts
must page, and its pass/fail criteria as thresholds over named measurements. The engine
interprets it; nothing scenario-specific lives in the engine. Durations come in two paces
(``fast`` seconds for the embedded stack, ``real`` for the playbook's minutes); latency
figures never scale.

Measurement names are dotted: ``checks.<checker>`` (its verdict), ``checks.<checker>.<figure>``,
``<probe label>.<figure>``, ``<fault label>.recovery_s`` / ``.restarts``,
``history.<figure>`` (the scenario's own requests), ``alerts.<Name>.ttd_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

Pace = Literal["fast", "real"]
Severity = Literal["P0", "P1", "P2"]
_SEVERITIES = ("P0", "P1", "P2")


class ScenarioError(ValueError):
    """A scenario file that cannot be run; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Duration:
    fast: float
    real: float

    def at(self, pace: Pace) -> float:
        return self.fast if pace == "fast" else self.real


@dataclass(frozen=True, slots=True)
class Step:
    """One thing to do: run a probe, or inject a fault for a while and heal it."""

    label: str
    probe: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    fault: str = ""
    target: str = ""
    duration: Duration | None = None
    recover: str = ""
    """After healing: which probe must succeed again (``checkout``) — its delay is the
    fault's recovery time."""
    during: tuple[str, ...] = ()
    """Probes run while the fault is active (after ``settle``)."""
    settle: Duration | None = None


@dataclass(frozen=True, slots=True)
class Criterion:
    text: str
    measure: str
    max: float | None = None
    min: float | None = None
    expect: str | None = None
    """For verdict measurements (``checks.*``): the verdict required, normally ``pass``."""
    severity: Severity = "P1"


@dataclass(frozen=True, slots=True)
class Load:
    rate: float = 0.0
    """Checkout flows started per second (hold, then pay)."""
    browse_rate: float = 0.0
    """Availability reads per second."""
    targets: tuple[str, ...] = ("ingress",)
    """Where the load goes: the ingress, or instances by name (``w1``, ``w2``)."""


@dataclass(frozen=True, slots=True)
class Scenario:
    id: int
    slug: str
    title: str
    playbook: str
    kind: str
    """Which area it exercises: payment, booking, webhook, db, cache, auth, network."""
    mandatory: bool
    load: Load
    steps: tuple[Step, ...]
    checks: tuple[str, ...]
    criteria: tuple[Criterion, ...]
    expect_alerts: tuple[str, ...] = ()
    rollback: tuple[str, ...] = ("heal", "reconcile")
    quiet: Duration = Duration(1.0, 10.0)
    """How long the system is left alone before its final state is read."""
    source: str = ""

    def probes(self) -> set[str]:
        found = {s.probe for s in self.steps if s.probe}
        found |= {p for s in self.steps for p in s.during}
        found |= {s.recover for s in self.steps if s.recover}
        return found


def load_scenarios(directory: Path | None = None) -> list[Scenario]:
    """Every ``*.yaml`` in ``directory`` (the built-in eight by default), ordered by id."""
    if directory is None:
        base = resources.files("gameday.drill") / "scenarios"
        files = [(p.name, p.read_text()) for p in base.iterdir() if p.name.endswith(".yaml")]
    else:
        files = [(p.name, p.read_text()) for p in directory.glob("*.yaml")]
    found = [parse_scenario(text, name) for name, text in sorted(files)]
    ids = [s.id for s in found]
    duplicate = {i for i in ids if ids.count(i) > 1}
    if duplicate:
        raise ScenarioError(f"scenario id {min(duplicate)} is used twice")
    return sorted(found, key=lambda s: s.id)


def parse_scenario(text: str, source: str) -> Scenario:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ScenarioError(f"{source}: not YAML: {error}") from None
    reader = _Reader(source, data, "")
    scenario = Scenario(
        id=reader.integer("id"),
        slug=reader.text("slug"),
        title=reader.text("title"),
        playbook=reader.text("playbook"),
        kind=reader.text("kind"),
        mandatory=reader.flag("mandatory", True),
        load=_load(reader.sub("load", optional=True)),
        steps=tuple(_step(r) for r in reader.items("steps")),
        checks=tuple(reader.strs("checks")),
        criteria=tuple(_criterion(r) for r in reader.items("criteria")),
        expect_alerts=tuple(reader.strs("expect_alerts", optional=True)),
        rollback=tuple(reader.strs("rollback", optional=True) or ("heal", "reconcile")),
        quiet=reader.duration("quiet", optional=True) or Duration(1.0, 10.0),
        source=source,
    )
    reader.done()
    if not scenario.criteria and not scenario.checks:
        raise ScenarioError(f"{source}: a scenario needs `criteria` or `checks` to be judged by")
    labels = [s.label for s in scenario.steps]
    if len(set(labels)) != len(labels):
        raise ScenarioError(f"{source}: step labels must be unique (use `as:`): {labels}")
    return scenario


def _load(r: _Reader | None) -> Load:
    if r is None:
        return Load()
    load = Load(
        r.number("rate", 0.0),
        r.number("browse_rate", 0.0),
        tuple(r.strs("targets", optional=True) or ("ingress",)),
    )
    r.done()
    return load


def _step(r: _Reader) -> Step:
    probe, fault = r.text("probe", ""), r.text("inject", "")
    if bool(probe) == bool(fault):
        raise ScenarioError(f"{r.where}: a step has exactly one of `probe` or `inject`")
    if probe:
        step = Step(label=r.text("as", probe), probe=probe, params=r.mapping("with"))
    else:
        step = Step(
            label=r.text("as", fault),
            fault=fault,
            target=r.text("target"),
            params=r.mapping("with"),
            duration=r.duration("for"),
            recover=r.text("recover", ""),
            during=tuple(r.strs("during", optional=True)),
            settle=r.duration("settle", optional=True),
        )
    r.done()
    return step


def _criterion(r: _Reader) -> Criterion:
    severity = r.text("severity", "P1")
    if severity not in _SEVERITIES:
        raise ScenarioError(f"{r.where}.severity must be one of {', '.join(_SEVERITIES)}")
    found = Criterion(
        text=r.text("text"),
        measure=r.text("measure"),
        max=r.number("max", None),
        min=r.number("min", None),
        expect=r.text("expect", "") or None,
        severity=severity,
    )
    if found.max is None and found.min is None and found.expect is None:
        raise ScenarioError(f"{r.where}: a criterion needs `max`, `min` or `expect`")
    r.done()
    return found


class _Reader:
    """Typed access to one YAML mapping that remembers which keys were read, so a typo
    (an unknown key) is an error naming the file and the path, not a silent default."""

    def __init__(self, source: str, data: Any, where: str) -> None:
        self.source, self.where = source, f"{source}{where}"
        if not isinstance(data, dict):
            raise ScenarioError(f"{self.where}: expected a mapping")
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def _get(self, key: str, default: Any, kind: type | tuple[type, ...], what: str) -> Any:
        self.seen.add(key)
        if key not in self.data:
            if default is _REQUIRED:
                raise ScenarioError(f"{self.where}: `{key}` is required")
            return default
        value = self.data[key]
        if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
            raise ScenarioError(f"{self.where}.{key} must be {what}, not {value!r}")
        return value

    def text(self, key: str, default: Any = None) -> Any:
        return self._get(key, _REQUIRED if default is None else default, str, "a string")

    def integer(self, key: str) -> int:
        return int(self._get(key, _REQUIRED, int, "an integer"))

    def flag(self, key: str, default: bool) -> bool:
        return bool(self._get(key, default, bool, "true or false"))

    def number(self, key: str, default: float | None) -> Any:
        value = self._get(key, default, (int, float), "a number")
        return None if value is None else float(value)

    def strs(self, key: str, optional: bool = False) -> list[str]:
        value = self._get(key, [] if optional else _REQUIRED, list, "a list")
        if not all(isinstance(v, str) for v in value):
            raise ScenarioError(f"{self.where}.{key} must be a list of strings")
        return list(value)

    def mapping(self, key: str) -> dict[str, Any]:
        return dict(self._get(key, {}, dict, "a mapping"))

    def sub(self, key: str, optional: bool = False) -> _Reader | None:
        value = self._get(key, None if optional else _REQUIRED, dict, "a mapping")
        return (
            None
            if value is None
            else _Reader(self.source, value, f"{self.where[len(self.source) :]}.{key}")
        )

    def items(self, key: str) -> list[_Reader]:
        value = self._get(key, _REQUIRED, list, "a list")
        prefix = self.where[len(self.source) :]
        return [_Reader(self.source, v, f"{prefix}.{key}[{i}]") for i, v in enumerate(value)]

    def duration(self, key: str, optional: bool = False) -> Any:
        value = self._get(
            key, None if optional else _REQUIRED, (int, float, dict), "seconds or {fast, real}"
        )
        if value is None:
            return None
        if isinstance(value, int | float):
            return Duration(float(value), float(value))
        sub = _Reader(self.source, value, f"{self.where[len(self.source) :]}.{key}")
        found = Duration(sub.number("fast", None) or 0.0, sub.number("real", None) or 0.0)
        sub.done()
        if found.fast <= 0 or found.real <= 0:
            raise ScenarioError(f"{self.where}.{key} needs positive `fast` and `real` seconds")
        return found

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ScenarioError(f"{self.where}: unknown field `{unknown[0]}`")


_REQUIRED = object()


def check_names(
    scenarios: list[Scenario],
    probes: Mapping[str, Any],
    checks: Mapping[str, Any],
    faults: Mapping[str, Any],
) -> None:
    """Every probe, checker and fault kind a scenario names exists (before anything starts)."""
    for s in scenarios:
        where = s.source or f"scenario {s.id}"
        for name in s.probes() - set(probes):
            raise ScenarioError(
                f"{where}: unknown probe `{name}`; known: {', '.join(sorted(probes))}"
            )
        for name in set(s.checks) - set(checks):
            raise ScenarioError(
                f"{where}: unknown check `{name}`; known: {', '.join(sorted(checks))}"
            )
        for step in s.steps:
            if step.fault and step.fault not in faults:
                raise ScenarioError(f"{where}: unknown fault kind `{step.fault}`")
        _check_measures(s, where)


def _check_measures(s: Scenario, where: str) -> None:
    """A criterion reading a figure nothing produces would be "unknown" forever: refused."""
    labels = {step.label for step in s.steps}
    for c in s.criteria:
        head, _, rest = c.measure.partition(".")
        if head == "checks" and rest.split(".")[0] not in s.checks:
            raise ScenarioError(f"{where}: criterion `{c.text}` reads {c.measure}, but "
                                f"`{rest.split('.')[0]}` is not in `checks`")  # fmt: skip
        if head not in {"checks", "history", "alerts"} | labels:
            steps = ", ".join(sorted(labels))
            raise ScenarioError(f"{where}: criterion `{c.text}` reads {c.measure}; no step is "
                                f"labelled `{head}` (steps: {steps})")  # fmt: skip

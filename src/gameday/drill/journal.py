"""The drill's journal: everything it did and saw, rewritten after every step.

Rewritten whole (to a temporary file, then renamed) rather than appended, so the file is
always one valid JSON document: an aborted drill still leaves everything up to its last
completed step, and a reader never sees half a write. It stays small (figures, verdicts,
events); the per-request evidence is the history file beside it.
"""

from __future__ import annotations

import math
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from gameday import __version__

JOURNAL, HISTORY, REPORT = "journal.json", "history.jsonl", "report.md"
_MAX_TIMELINE = 5_000


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value) if isinstance(value, set | frozenset) else list(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    raise TypeError(f"cannot journal {type(value).__name__}")


def _clean(value: Any) -> Any:
    """NaN and infinities are not JSON: written as null ("not measured")."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class Journal:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.path = directory / JOURNAL
        self._lock = threading.Lock()
        self.data: dict[str, Any] = {
            "journal_version": 1,
            "gameday_version": __version__,
            "started_at": datetime.now(UTC).isoformat(),
            "finished_at": None,
            "status": "running",
            "abort_reason": None,
            "options": {},
            "target": {},
            "preflight": [],
            "baseline": {},
            "scenarios": [],
            "timeline": [],
            "alerts": [],
            "history": {"file": HISTORY},
            "summary": {},
        }

    def event(self, at: float, kind: str, what: str, **details: Any) -> None:
        """A timeline entry; ``at`` is seconds since the drill started (the history's clock)."""
        with self._lock:
            timeline = self.data["timeline"]
            if len(timeline) < _MAX_TIMELINE:
                timeline.append({"t": round(at, 3), "kind": kind, "what": what, **details})

    def save(self) -> None:
        with self._lock:
            save_document(self.data, self.dir)

    def finish(self, status: str, reason: str | None = None) -> None:
        self.data["status"] = status
        self.data["abort_reason"] = reason
        self.data["finished_at"] = datetime.now(UTC).isoformat()
        self.save()


def save_document(data: dict[str, Any], directory: Path) -> None:
    body = orjson.dumps(_clean(data), default=_default, option=orjson.OPT_INDENT_2)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / JOURNAL
    tmp = path.with_suffix(".json.tmp")
    # Atomic (rename), not synced: it is saved at every injection, on the event loop,
    # and a crash of the harness (not of the machine) is what it must survive.
    tmp.write_bytes(body)
    os.replace(tmp, path)


def load_journal(path: Path) -> dict[str, Any]:
    data = orjson.loads(path.read_bytes())
    if not isinstance(data, dict) or data.get("journal_version") != 1:
        raise ValueError(f"{path} is not a gameday journal (version 1)")
    return data

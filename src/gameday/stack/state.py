"""Where stacks live on disk, how another process finds a running one, and how the debris
of a harness that died without cleaning up (``kill -9``, a power cut) is removed.

Each stack owns ``<root>/<id>/`` (root: ``$GAMEDAY_STACK_ROOT`` or
``/tmp/gameday-stacks``) holding its programs' data and logs and ``state.json``: the
owner's pid and start time (so a recycled pid is not mistaken for the owner), what runs
where, and the control address. Its children die with the owner by themselves (see
:mod:`gameday.stack.processes`); :func:`sweep` removes what processes cannot take with
them — the directory and any disk-fill file outside it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import threading
import time
from pathlib import Path
from typing import Any

from gameday.faults.resources import FILL_PREFIX
from gameday.stack.processes import StartError, alive

STATE = "state.json"
FAULTS = "faults.json"


def root() -> Path:
    default = f"/tmp/gameday-stacks-{os.geteuid()}"  # noqa: S108 - checked private: ensure_root
    return Path(os.environ.get("GAMEDAY_STACK_ROOT", default))


def ensure_root() -> Path:
    """The stacks' root, made private: under a shared ``/tmp`` a directory planted by another
    user could redirect our writes or list pids for ``sweep`` to kill."""
    base = root()
    try:
        base.mkdir(mode=0o711, parents=True, exist_ok=True)
        info = base.lstat()
    except OSError as error:
        raise StartError(f"cannot use {base} for stacks: {error.strerror}") from None
    if stat.S_ISLNK(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise StartError(f"{base} is not a private directory of this user (owner, mode or "
                         "symlink); set GAMEDAY_STACK_ROOT to one that is")  # fmt: skip
    return base


def start_ticks(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (stable for the process's life)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def owner_alive(state: dict[str, Any]) -> bool:
    pid = int(state.get("owner_pid", 0))
    return pid > 0 and alive(pid) and start_ticks(pid) == state.get("owner_start")


def write_state(directory: Path, state: dict[str, Any]) -> None:
    """Atomically, created 0600 from the start (it holds the stack's tokens)."""
    tmp = directory / f"{STATE}.{os.getpid()}.{threading.get_ident()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(state, indent=1))
    tmp.replace(directory / STATE)


def read_state(directory: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((directory / STATE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_stacks() -> list[dict[str, Any]]:
    """States of the stacks whose owner is alive, newest first."""
    found = []
    base = root()
    if _private(base):
        for directory in base.iterdir():
            state = read_state(directory)
            if state is not None and owner_alive(state):
                found.append(state)
    return sorted(found, key=lambda s: str(s.get("started_at", "")), reverse=True)


def _private(base: Path) -> bool:
    try:
        info = base.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o022


def sweep() -> list[str]:
    """Remove the directories (and disk-fill files) of stacks whose owner is dead; kill any
    of their processes still alive. Returns the ids removed."""
    removed: list[str] = []
    base = root()
    if not _private(base):  # never act on what another user may have planted
        return removed
    for directory in base.iterdir():
        state = read_state(directory)
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile by its reaper
            if state is None and time.time() - directory.stat().st_mtime < 60:
                continue  # a stack being born: its state file comes within seconds
        if state is not None and owner_alive(state):
            continue
        sweep_dir(directory)
        removed.append(directory.name)
    return removed


def sweep_dir(directory: Path) -> None:
    """Remove one dead stack: kill what still runs of it, its disk fills, its directory."""
    for part in (read_state(directory) or {}).get("parts", {}).values():
        pid, ticks = part.get("pid"), part.get("start")
        if pid and ticks is not None and start_ticks(int(pid)) == ticks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    _remove_fills(directory)
    shutil.rmtree(directory, ignore_errors=True)


def _remove_fills(directory: Path) -> None:
    try:
        faults = json.loads((directory / FAULTS).read_text())
    except (OSError, ValueError):
        return
    for fault in faults if isinstance(faults, list) else []:
        path = str((fault.get("handle") or {}).get("path", ""))
        if path and Path(path).name.startswith(FILL_PREFIX):
            Path(path).unlink(missing_ok=True)

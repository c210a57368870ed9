"""The stack as the faults see it (:class:`gameday.faults.base.FaultContext`): target
names resolved to proxy links and processes, and the few actions faults may take."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gameday.faults.errors import FaultError
from gameday.faults.proxy import ProxyError
from gameday.stack.processes import spawn

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gameday.stack.stack import Stack

_DEPENDENCIES = ("db", "redis", "provider", "smtp")
_WORKER_GROUPS = frozenset({"workers", "all-workers"})


class StackFaultContext:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack

    # ------------------------------------------------------------ network

    def links(self, target: str) -> list[str]:
        names = list(self._stack.links)
        if target == "all":
            found = [n for n in names if n != "ingress"]
        elif target in _DEPENDENCIES:
            found = [n for n in names if n.endswith(f".{target}")]
        elif target in names:
            found = [target]
        else:
            found = [n for n in names if n.startswith(f"{target}.")]
        if not found:
            raise FaultError(f"no proxy link matches {target!r}; links: {', '.join(names)} "
                             "(or a worker, a dependency, all)")  # fmt: skip
        return found

    def proxy_add_toxic(self, link: str, kind: str, params: Mapping[str, Any]) -> str:
        try:
            return str(self._stack.proxy_client.add_toxic(link, kind, **params))
        except ProxyError as error:
            raise FaultError(f"{kind} on {link}: {error}") from None

    def proxy_remove_toxic(self, link: str, toxic_id: str) -> None:
        try:
            self._stack.proxy_client.remove_toxic(link, toxic_id)
        except ProxyError as error:
            raise FaultError(f"healing {link}: {error}") from None

    # ------------------------------------------------------------ processes

    def process_names(self, target: str) -> list[str]:
        parts = self._stack.parts
        if target in _WORKER_GROUPS:
            found = [n for n in parts if n in self._stack.workers]
        elif target in parts and target != "proxy":
            found = [target]
        else:
            found = []
        if not found:
            allowed = ", ".join(n for n in parts if n != "proxy")
            raise FaultError(f"no process matches {target!r}; processes: {allowed}, workers")
        external = [n for n in found if not parts[n].managed]
        if external:
            raise FaultError(f"{external[0]} is an existing server, not a process of this stack")
        return found

    def pid_of(self, part: str) -> int | None:
        found = self._stack.part(part)
        return found.pid if found.running() else None

    def restart(self, part: str) -> None:
        self._stack.part(part).restart()
        self._stack.refresh_state()

    def ensure_running(self, part: str) -> None:
        found = self._stack.part(part)
        if not found.running():
            found.start()
            self._stack.refresh_state()

    # ------------------------------------------------------------ machine and clients

    def spawn_load(self, argv: list[str], name: str) -> int:
        """The helper dies with the stack and stops at its own deadline; a thread reaps it
        (killed by ``heal``, it would otherwise linger as a zombie)."""
        proc = spawn(argv, log=self._stack.dir / f"fault-{name}.log")
        threading.Thread(target=proc.wait, name=f"reap-{name}", daemon=True).start()
        return proc.pid

    def set_client_option(self, name: str, value: Any) -> None:
        if value is None:
            self._stack.client_options.pop(name, None)
        else:
            self._stack.client_options[name] = value
        self._stack.refresh_state()

    def budget_s(self) -> float:
        faults = self._stack.faults
        return faults.budget_s() if faults is not None else 0.0

    def data_dir(self) -> str:
        return str(Path(self._stack.dir))

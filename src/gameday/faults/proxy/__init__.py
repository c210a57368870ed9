"""The TCP fault proxy: links between the service workers and their dependencies, and the
faults ("toxics") injected in them at runtime.

Run it as a process (``python -m gameday.faults.proxy``, see :mod:`.daemon`), drive it with
:class:`ProxyClient`, or host a :class:`ProxyEngine` on an event loop of your own.
"""

from gameday.faults.proxy.client import TOKEN_HEADER, ProxyClient
from gameday.faults.proxy.daemon import READY_PREFIX
from gameday.faults.proxy.engine import ProxyEngine
from gameday.faults.proxy.errors import Conflict, InvalidSpec, NotFound, ProxyError
from gameday.faults.proxy.toxics import KINDS, ActiveToxic, Direction, Toxic, parse_toxic, register

__all__ = [
    "KINDS",
    "READY_PREFIX",
    "TOKEN_HEADER",
    "ActiveToxic",
    "Conflict",
    "Direction",
    "InvalidSpec",
    "NotFound",
    "ProxyClient",
    "ProxyEngine",
    "ProxyError",
    "Toxic",
    "parse_toxic",
    "register",
]

"""The nemesis: fault kinds (network, process, resource, auth) and the registry that
guarantees every injected fault is healed. Importing this package registers every kind."""

from gameday.faults import auth, process, resources, tcp
from gameday.faults.base import KINDS, Fault, FaultContext, Handle, build
from gameday.faults.errors import FaultError
from gameday.faults.registry import ActiveFault, FaultEvent, FaultRegistry

__all__ = [
    "KINDS",
    "ActiveFault",
    "Fault",
    "FaultContext",
    "FaultError",
    "FaultEvent",
    "FaultRegistry",
    "Handle",
    "auth",
    "build",
    "process",
    "resources",
    "tcp",
]

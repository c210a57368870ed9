"""The drill's load: a lean HTTP client for loopback targets and the driver that records every
request it makes as one operation of the history."""

from gameday.load.client import HttpClient
from gameday.load.connection import Response
from gameday.load.driver import Call, Driver, run
from gameday.load.errors import (
    ConnectError,
    LoadError,
    LoadLimit,
    PoolTimeout,
    RequestError,
    ResponseLost,
    ResponseTimeout,
    TargetNotAllowed,
)
from gameday.load.stats import Stats, Window

__all__ = [
    "Call",
    "ConnectError",
    "Driver",
    "HttpClient",
    "LoadError",
    "LoadLimit",
    "PoolTimeout",
    "RequestError",
    "Response",
    "ResponseLost",
    "ResponseTimeout",
    "Stats",
    "TargetNotAllowed",
    "Window",
    "run",
]

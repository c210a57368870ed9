"""Errors of the load layer. The split under ``RequestError`` is the one the history needs:
whether the request reached the target decides between ``fail`` and ``info``::

    LoadError                   base of the package
    ├── TargetNotAllowed        (also ValueError) the target is not on loopback: refused, always
    ├── LoadLimit               the driver's max_ops was reached: nothing more is sent
    └── RequestError            one request got no answer
        ├── ConnectError        never sent (no connection): it definitely did not happen
        │   └── PoolTimeout     no free connection within the timeout: never sent either
        └── ResponseLost        sent, but no complete answer: nobody knows if it happened
            └── ResponseTimeout     the answer did not come in time
"""

from __future__ import annotations


class LoadError(Exception):
    """Anything the load layer refuses or could not do."""


class TargetNotAllowed(LoadError, ValueError):  # noqa: N818 - named for what the caller did
    """The drill sends load to this machine only, so a typo cannot load-test someone else."""


class LoadLimit(LoadError):  # noqa: N818 - named for what was reached
    """The bound on the number of operations: a runaway scenario stops instead of flooding."""


class RequestError(LoadError):
    """One request did not get a complete answer; the subclass says whether it was sent."""


class ConnectError(RequestError):
    """The request was never written to a connection: a definite failure (``fail``)."""


class PoolTimeout(ConnectError):  # noqa: N818 - named for what happened
    """Every connection stayed busy for the whole timeout: the request was never sent."""


class ResponseLost(RequestError):  # noqa: N818 - named for what happened
    """The request was sent but the answer is missing or broken: outcome unknown (``info``)."""


class ResponseTimeout(ResponseLost):
    """The request was sent and the answer did not come in time: outcome unknown (``info``)."""

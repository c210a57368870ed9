"""Errors of the fault proxy, shared by the engine, its control API and the control client::

    ProxyError             anything the proxy refuses or cannot do; the client raises it
    ├── NotFound           404: no such link or toxic
    ├── Conflict           409: the name is taken, or the link's port is no longer free
    └── InvalidSpec        422: a link or toxic description is wrong; ``field`` names where

The engine raises the subclasses; the API maps each to its status (``status``) and a stable
machine-readable ``code``; the client turns any refusal back into a :class:`ProxyError`
carrying the server's message, status and code.
"""

from __future__ import annotations


class ProxyError(Exception):
    """A refusal or a failure of the proxy, with the server's words when there was one."""

    status: int = 500
    code: str = "proxy_error"

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code


class NotFound(ProxyError):  # noqa: N818 - named for the answer, as HTTP names it
    status = 404
    code = "not_found"


class Conflict(ProxyError):  # noqa: N818 - named for the answer, as HTTP names it
    status = 409
    code = "conflict"


class InvalidSpec(ProxyError):  # noqa: N818 - named for the answer, as HTTP names it
    """A description that cannot be obeyed; ``field`` is the first offending parameter."""

    status = 422
    code = "invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field

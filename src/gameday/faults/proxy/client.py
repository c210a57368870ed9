"""A small synchronous client of the proxy's control API, for the harness and tests.

Every refusal and every failure to reach the proxy is a :class:`ProxyError` carrying the
server's message (and its status and code when there was an answer), so a caller handles
one exception type. Removing a toxic that is already gone succeeds: heals are idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, cast
from urllib.parse import quote

import httpx

from gameday.faults.proxy.errors import ProxyError

TOKEN_HEADER = "X-Proxy-Token"  # noqa: S105 - the header's name, not a secret


class ProxyClient:
    def __init__(self, url: str, token: str | None = None, timeout: float = 5.0) -> None:
        headers = {TOKEN_HEADER: token} if token else {}
        self._http = httpx.Client(base_url=url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise ProxyError(f"proxy unreachable at {self._http.base_url}: {exc}") from exc
        if response.status_code >= 400:
            raise _refusal(response)
        return response.json() if response.content else None

    def health(self) -> bool:
        return bool(self._call("GET", "/health"))

    def add_link(self, name: str, upstreams: Sequence[str], listen_port: int = 0) -> dict[str, Any]:
        """Create a link; the answer's ``listen`` is the ``host:port`` to connect to."""
        body = {"name": name, "upstreams": list(upstreams), "listen_port": listen_port}
        return cast(dict[str, Any], self._call("POST", "/links", body))

    def links(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", "/links"))

    def link(self, name: str) -> dict[str, Any]:
        return cast(dict[str, Any], self._call("GET", f"/links/{_seg(name)}"))

    def remove_link(self, name: str) -> None:
        self._call("DELETE", f"/links/{_seg(name)}")

    def add_toxic(self, link: str, kind: str, **params: Any) -> str:
        """Add a fault to a link now (open connections included); returns its id."""
        toxic = self._call("POST", f"/links/{_seg(link)}/toxics", {"kind": kind, **params})
        return str(toxic["id"])

    def toxics(self, link: str) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._call("GET", f"/links/{_seg(link)}/toxics"))

    def remove_toxic(self, link: str, toxic_id: str) -> None:
        try:
            self._call("DELETE", f"/links/{_seg(link)}/toxics/{_seg(toxic_id)}")
        except ProxyError as exc:
            if exc.status != 404:  # the toxic, or its whole link, is gone already
                raise

    def clear(self, link: str) -> None:
        self._call("DELETE", f"/links/{_seg(link)}/toxics")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ProxyClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _seg(name: str) -> str:
    """A name as one path segment, whatever it contains."""
    return quote(name, safe="")


def _refusal(response: httpx.Response) -> ProxyError:
    try:
        body = response.json()
        message, code = str(body["message"]), str(body["error"])
    except (ValueError, KeyError, TypeError):
        message, code = response.text or response.reason_phrase, None
    return ProxyError(message, status=response.status_code, code=code)

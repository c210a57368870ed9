"""Idempotency keys exactly as Stripe documents them (docs.stripe.com/api/idempotent_requests).

* The first response for a (mode, key) is saved once the endpoint *begins executing* and is
  replayed for every later request with that key, errors and 500s included.
* The same key with another endpoint or other parameters is a 400 ``idempotency_error``.
* A request arriving while the first with its key is still executing gets a 409
  ``idempotency_key_in_use`` and nothing is saved for it.
* A request that fails validation saves nothing: it never began executing.
* Keys live at least 24 h of emulator time, then may be pruned and reused.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from stripe_emulator.clock import Clock
from stripe_emulator.errors import IdempotencyError, KeyInUseError, RateLimitError

DAY_S = 24 * 3600.0


@dataclass(slots=True)
class Saved:
    method: str
    path: str
    fingerprint: str
    created: float
    status: int | None = None
    """None while the first request is still executing."""
    body: bytes = b""


class IdempotencyStore:
    def __init__(self, clock: Clock, ttl_s: float = DAY_S, max_keys: int = 2_000_000) -> None:
        self._clock = clock
        self._ttl_s = ttl_s
        self._max_keys = max_keys
        self._records: dict[str, Saved] = {}
        self._expiry: deque[tuple[float, str]] = deque()

    def __len__(self) -> int:
        return len(self._records)

    def begin(self, key: str, method: str, path: str, fingerprint: str) -> Saved | None:
        """The saved response to replay, or None after reserving the key for this request."""
        now = self._clock.now()
        self._prune(now)
        saved = self._records.get(key)
        if saved is None:
            if len(self._records) >= self._max_keys:
                raise RateLimitError(
                    "The emulator holds its maximum of idempotency keys; advance its clock "
                    "past 24 h or reset it.",
                    code="rate_limit",
                )
            self._records[key] = Saved(method, path, fingerprint, now)
            self._expiry.append((now, key))
            return None
        if saved.status is None:
            raise KeyInUseError(
                "There is currently another in-progress request using this Idempotent Key "
                "(that probably means you submitted twice, and the other request is still "
                f"going through): {key}. Please try again later.",
                code="idempotency_key_in_use",
            )
        if (saved.method, saved.path) != (method, path):
            raise IdempotencyError(
                "Keys for idempotent requests can only be used for the same endpoint they were "
                f"first used for ('{saved.method} {saved.path}' vs '{method} {path}'). Try "
                f"using a key other than '{key}' if you meant to execute a different request."
            )
        if saved.fingerprint != fingerprint:
            raise IdempotencyError(
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with. Try using a key other than '{key}' if you meant to "
                "execute a different request."
            )
        return saved

    def finish(self, key: str, status: int, body: bytes) -> None:
        saved = self._records.get(key)
        if saved is not None and saved.status is None:
            saved.status, saved.body = status, body

    def abandon(self, key: str) -> None:
        saved = self._records.get(key)
        if saved is not None and saved.status is None:
            del self._records[key]

    def _prune(self, now: float) -> None:
        while self._expiry and self._expiry[0][0] <= now - self._ttl_s:
            created, key = self._expiry.popleft()
            saved = self._records.get(key)
            if saved is not None and saved.created == created and saved.status is not None:
                del self._records[key]

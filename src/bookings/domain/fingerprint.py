"""What makes two requests "the same request" for an idempotency key."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def request_fingerprint(method: str, path: str, body: Any) -> str:
    """SHA-256 over the method, path and the JSON body with sorted keys.

    Key order and whitespace do not make a different request; any value change does.
    """
    canonical = json.dumps(
        {"m": method.upper(), "p": path, "b": body}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def derived_key(*parts: object) -> str:
    """A provider idempotency key from stable parts, so a retry maps to the same object.

    Parts are joined with ``|``, escaping ``\\`` and ``|`` inside them, so different parts
    never give one key (``("a|b",)`` vs ``("a", "b")``) and keys of parts without either
    character are unchanged.
    """
    text = "|".join(str(p).replace("\\", "\\\\").replace("|", "\\|") for p in parts)
    return "bk-" + hashlib.sha256(text.encode()).hexdigest()[:40]

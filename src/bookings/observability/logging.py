"""JSON logs with a correlation id on every line and nothing a customer would not want read.

structlog's contextvars carry ``req_id`` from the request middleware into every line the
request causes, including lines from the services. The redaction processor is the last
line before rendering: keys that name secrets or personal data are masked wherever they
appear, and card numbers, bearer tokens and email addresses are masked inside free text.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

_SECRET_KEYS = re.compile(
    r"(password|secret|token|authorization|cookie|card|payment_method|email|recipient|"
    r"signature|api_key|cvc)",
    re.IGNORECASE,
)
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]+")
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_STRIPE_SECRET = re.compile(r"\b(sk|rk|whsec)_(test|live)?_?[A-Za-z0-9]+")
REDACTED = "[redacted]"


def redact_text(text: str) -> str:
    for pattern in (_BEARER, _JWT, _STRIPE_SECRET, _CARD, _EMAIL):
        text = pattern.sub(REDACTED, text)
    return text


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {
            k: REDACTED if _SECRET_KEYS.search(str(k)) else _redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets and personal data in every field."""
    for key in list(event_dict):
        if key in ("event", "level", "timestamp", "logger"):
            if isinstance(event_dict[key], str):
                event_dict[key] = redact_text(event_dict[key])
            continue
        event_dict[key] = REDACTED if _SECRET_KEYS.search(key) else _redact(event_dict[key])
    return event_dict


def configure(level: str = "info", stream: Any = None) -> None:
    """Route structlog and the standard library's loggers into one JSON stream."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]
    structlog.configure(
        # Drop lines below the logger's level before any processing (redaction costs).
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("uvicorn.access", "httpx", "httpcore", "stripe", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def set_verbose(verbose: bool, base_level: str) -> None:
    """GAMEDAY_VERBOSE_OBSERVABILITY: booking and payment handlers log at DEBUG."""
    level = logging.DEBUG if verbose else logging.getLevelName(base_level.upper())
    for name in (
        "bookings.services.holds",
        "bookings.services.payments",
        "bookings.services.webhooks",
    ):
        logging.getLogger(name).setLevel(level)

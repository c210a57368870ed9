"""Errors of the fault layer::

FaultError            a fault cannot be built, injected or healed (the message says why)
"""

from __future__ import annotations


class FaultError(Exception):
    """A client mistake or an impossible fault; shown to the user as one line."""

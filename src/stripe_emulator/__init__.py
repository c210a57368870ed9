"""A payment provider that behaves like Stripe where correctness is decided.

Idempotency keys, signed at-least-once unordered webhooks, refund limits, the PaymentIntent
lifecycle and the test cards, reached through the official ``stripe`` SDK, plus fault
switches for Game Day drills. Run it with ``stripe-emulator`` or, in-process, with
``EmulatorServer``.
"""

from stripe_emulator.app import create_app
from stripe_emulator.emulator import Emulator, Settings
from stripe_emulator.errors import EmulatorError
from stripe_emulator.faults import FaultConfig
from stripe_emulator.server import EmulatorServer
from stripe_emulator.webhooks import DeliverySettings, sign

__all__ = [
    "DeliverySettings",
    "Emulator",
    "EmulatorError",
    "EmulatorServer",
    "FaultConfig",
    "Settings",
    "create_app",
    "sign",
]

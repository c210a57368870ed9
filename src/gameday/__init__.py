"""Game Day drills for booking and payment systems.

The harness talks to its target over HTTP, SQL and the payment provider's API only; it
never imports ``bookings`` and starts ``stripe_emulator`` solely as a separate process.
"""

__version__ = "0.1.0"

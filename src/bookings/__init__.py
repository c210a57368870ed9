"""The reference booking and payments service: search, hold, pay, confirm.

It never imports ``gameday`` or ``stripe_emulator``: it reaches the payment provider
through the official ``stripe`` SDK, configured by URL, so pointing it at Stripe's test
mode is a configuration change.
"""

__version__ = "0.1.0"

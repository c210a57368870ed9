"""The reference booking and payments service (issue 3 builds it).

It will never import ``gameday`` or ``stripe_emulator``: it reaches the payment provider
through the official ``stripe`` SDK, configured by URL.
"""

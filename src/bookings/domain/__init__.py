"""The booking business in plain Python: no web framework, database, cache or provider SDK.

Everything here is a value or a pure rule, so the rules can be property-tested in isolation
and every adapter (SQL, HTTP, Stripe) is forced to go through them.
"""

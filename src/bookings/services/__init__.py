"""Use cases: each one a transaction boundary over the domain rules and the adapters."""

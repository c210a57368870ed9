"""Adapters: the database, Redis, the payment provider, SMTP. Only these touch the wire."""

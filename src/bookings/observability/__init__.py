"""Logs and metrics: what an on-call engineer reads during a drill."""

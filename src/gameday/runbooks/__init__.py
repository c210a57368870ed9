"""The incident runbooks as commands: read-only diagnoses that end in a plan, and applies
of exactly that plan (drift-checked, capped, confirmed, audited)."""

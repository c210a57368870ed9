"""Incident communications and the post-incident review, filled from evidence only."""

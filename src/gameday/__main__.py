"""``python -m gameday``: the same as the ``gameday`` command."""

from gameday.cli import main

main()

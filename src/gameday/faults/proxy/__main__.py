"""``python -m gameday.faults.proxy``: see :mod:`gameday.faults.proxy.daemon`."""

import sys

from gameday.faults.proxy.daemon import main

sys.exit(main())

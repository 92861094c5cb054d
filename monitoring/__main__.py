"""``python -m monitoring``: the command line (see monitoring.cli)."""

import sys

from monitoring.cli import main

sys.exit(main())

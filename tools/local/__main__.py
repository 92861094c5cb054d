"""`python -m tools.local`: the platform's whole lifecycle on this machine (what `make local` runs)."""

import sys

from tools.local.lifecycle import main

sys.exit(main())

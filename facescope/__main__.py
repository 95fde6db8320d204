"""``python -m facescope`` runs the command line."""

import sys

from facescope.cli import main

sys.exit(main())

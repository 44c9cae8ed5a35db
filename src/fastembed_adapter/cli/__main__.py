"""``python -m fastembed_adapter.cli``."""

import sys

from . import main

sys.exit(main())

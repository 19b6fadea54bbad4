"""``python -m dpmodel.cli`` = ``dp``."""

import sys

from dpmodel.cli import main

sys.exit(main())

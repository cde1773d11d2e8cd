"""``python -m servegate report ...``: the CLI without relying on the console script being on PATH."""

import sys

from servegate.cli import main

sys.exit(main())

"""``python3 -m rscore.cli`` is the ``rsrestore`` command."""

import sys

from rscore.cli.main import main

sys.exit(main())

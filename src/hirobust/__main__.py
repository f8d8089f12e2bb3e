"""``python -m hirobust`` (and ``torchrun -m hirobust``) = the ``hirobust`` command."""

import sys

from .app.cli import main

sys.exit(main())

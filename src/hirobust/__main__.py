"""``python -m hirobust`` (and ``torchrun -m hirobust``) = the ``hirobust`` command."""

import sys

from .cli import main

sys.exit(main())

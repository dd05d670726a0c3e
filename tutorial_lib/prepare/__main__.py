"""`python -m tutorial_lib.prepare`: the same as `python -m tutorial_lib prepare`."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())

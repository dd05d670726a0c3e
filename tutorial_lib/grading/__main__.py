"""`python -m tutorial_lib.grading PATH...`: the same as `python -m tutorial_lib grade PATH...`."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

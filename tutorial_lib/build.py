"""`python -m tutorial_lib.build [--check]`: write chapters/ from solutions/ (see tutorial_lib.notebooks)."""

from __future__ import annotations

import sys

from .notebooks import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))

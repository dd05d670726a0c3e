"""`python -m tutorial_lib.organisms ...`: see `organisms.cli`."""

from .cli import main

main()

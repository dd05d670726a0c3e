"""tutorial_lib: the small, tested library behind the mechanistic-interpretability curriculum."""

from __future__ import annotations

__version__ = "0.1.0"

from .runtime import Session, setup

__all__ = ["Session", "__version__", "setup"]

"""The one setup call every notebook makes first: device, seeds, determinism, Colab, display."""

from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch

from .device import best_device

MODEL_ENV = "TUTORIAL_MODEL"  # e.g. TUTORIAL_MODEL=gpt2 on Colab switches notebooks to a real model


@dataclass(frozen=True)
class Session:
    """What `setup` decided; notebooks read the device and the model setting from it."""

    device: torch.device
    seed: int
    in_colab: bool
    model_setting: str | None  # None: the notebooks' own organisms

    def model(self, default: str) -> str:
        """The model a notebook should load: the TUTORIAL_MODEL setting if given, else `default`."""
        return self.model_setting or default

    @property
    def on_organism(self) -> bool:
        """True when the notebook runs on its own organisms (no TUTORIAL_MODEL setting)."""
        return self.model_setting is None

    def organism_only(self, what: str) -> bool:
        """Guard for a claim about the shipped organisms, the one visible way every chapter uses:
        `if session.organism_only("toy-lm's name-mover claims"): assert ...`. On an organism it
        returns True and prints nothing; on a real model it prints what is skipped and returns False."""
        if self.on_organism:
            return True
        print(f"[{self.model_setting}] skipped: {what} (a claim about the organism, not this model).")
        return False

    def pick(self, organism, real):
        """A size chosen for the model in use: `n_prompts = session.pick(organism=200, real=24)`."""
        return organism if self.on_organism else real

    def __repr__(self) -> str:
        return f"Session(device={self.device.type!r}, seed={self.seed}, model={self.model_setting or 'organisms'!r})"


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so that a notebook run twice gives the same numbers on CPU."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def in_colab() -> bool:
    return "google.colab" in sys.modules


def setup(seed: int = 0, quiet: bool = False) -> Session:
    """Pick the device, seed everything, make CPU runs deterministic and configure display.

    Returns a Session; `session.model("toy-lm")` honours the TUTORIAL_MODEL setting.
    """
    threads = os.environ.get("TUTORIAL_THREADS")
    if threads:  # CI and the notebook executor pin 1: tiny models gain nothing from threads on a shared machine
        torch.set_num_threads(int(threads))
    seed_everything(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    from . import display, plots  # imported here: display choices depend on the environment

    colab = in_colab()
    display.configure(colab=colab)
    plots.configure()
    session = Session(best_device(), seed, colab, os.environ.get(MODEL_ENV) or None)
    if not quiet:
        print(
            f"tutorial_lib ready: device={session.device.type}, seed={seed}, model={session.model_setting or 'organisms'}"
        )
    return session

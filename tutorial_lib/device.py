"""Which device to compute on, and the list of devices the tests must cover."""

from __future__ import annotations

import os

import torch


def best_device() -> torch.device:
    """cuda, then mps, then cpu; TUTORIAL_DEVICE overrides (e.g. TUTORIAL_DEVICE=cpu)."""
    forced = os.environ.get("TUTORIAL_DEVICE")
    if forced:
        return torch.device(forced)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def available_devices() -> list[str]:
    """Every device present: always "cpu", plus "cuda" when a GPU is visible."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices.append("cuda")
    return devices

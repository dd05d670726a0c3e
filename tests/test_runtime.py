"""setup(): device, seeds, the model setting."""

from __future__ import annotations

import torch

import tutorial_lib


def test_setup_makes_runs_repeatable(capsys):
    tutorial_lib.setup(seed=3)
    a = torch.randn(5)
    tutorial_lib.setup(seed=3)
    b = torch.randn(5)
    assert torch.equal(a, b)
    assert "tutorial_lib ready" in capsys.readouterr().out


def test_model_setting_defaults_to_organisms(monkeypatch):
    monkeypatch.delenv("TUTORIAL_MODEL", raising=False)
    assert tutorial_lib.setup(quiet=True).model("toy-lm") == "toy-lm"
    monkeypatch.setenv("TUTORIAL_MODEL", "gpt2")
    assert tutorial_lib.setup(quiet=True).model("toy-lm") == "gpt2"


def test_organism_guard_and_sizes(monkeypatch, capsys):
    monkeypatch.delenv("TUTORIAL_MODEL", raising=False)
    organism = tutorial_lib.setup(quiet=True)
    assert organism.on_organism and organism.organism_only("the toy-lm claims")
    assert organism.pick(organism=200, real=24) == 200
    assert capsys.readouterr().out == ""
    monkeypatch.setenv("TUTORIAL_MODEL", "smollm2-135m")
    real = tutorial_lib.setup(quiet=True)
    assert not real.on_organism and not real.organism_only("the toy-lm claims")
    assert real.pick(organism=200, real=24) == 24
    assert "skipped: the toy-lm claims" in capsys.readouterr().out

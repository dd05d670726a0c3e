"""setup(), the circuitsvis wrapper and the plot helpers."""

from __future__ import annotations

import urllib.request

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

import tutorial_lib
from tutorial_lib import display, plots
from tutorial_lib.validation import TutorialInputError


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


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*_args, **_kwargs):
        raise AssertionError("the display must never probe the network")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


@pytest.mark.usefixtures("no_network")
def test_inline_mode_sends_the_bundle_once():
    display.configure(mode="inline")
    view = display.attention_heads(torch.rand(2, 3, 3), ["a", "b", "c"])
    first, second = view._repr_html_(), view._repr_html_()
    assert len(first) > 1_000_000 > 10_000 > len(second)
    assert "CircuitsVis.render" in second
    assert repr(view) == "<AttentionHeads: 2 heads x 3 tokens>"


@pytest.mark.usefixtures("no_network")
def test_cdn_mode_is_small():
    display.configure(mode="cdn")
    html = display.colored_tokens(["a", "b"], torch.tensor([0.1, 0.9]))._repr_html_()
    assert len(html) < 2000 and "esm.js" in html
    display.configure(mode="inline")


def test_display_rejects_mismatched_inputs():
    with pytest.raises(TutorialInputError, match="3 tokens"):
        display.attention_heads(torch.rand(2, 4, 4), ["a", "b", "c"])
    with pytest.raises(TutorialInputError, match="one value per token"):
        display.colored_tokens(["a", "b"], torch.rand(3))
    with pytest.raises(TutorialInputError, match="one of"):
        display.configure(mode="fancy")


def test_plots_return_figures_and_reject_bad_shapes():
    fig = plots.heatmap(torch.randn(3, 4), xlabels=list("abcd"), show=False)
    assert fig.axes[0].get_xticklabels()[0].get_text() == "a"
    fig = plots.line({"train": [3, 2, 1], "test": [3, 2.5, 2]}, show=False)
    assert len(fig.axes[0].lines) == 2
    fig = plots.attention_grid(torch.rand(3, 4, 4), list("abcd"), show=False)
    assert sum(ax.has_data() for ax in fig.axes) == 3
    with pytest.raises(TutorialInputError):
        plots.heatmap(torch.randn(2, 3, 4))
    with pytest.raises(TutorialInputError):
        plots.attention_grid(torch.rand(3, 4, 4), list("abc"))

"""The circuitsvis wrapper: offline modes, one bundle per kernel, input checks."""

from __future__ import annotations

import urllib.request

import pytest
import torch

from tutorial_lib import display
from tutorial_lib.validation import TutorialInputError


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

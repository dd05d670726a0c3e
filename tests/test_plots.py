"""The matplotlib helpers: figures returned with show=False, bad shapes rejected."""

from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from tutorial_lib import plots
from tutorial_lib.validation import TutorialInputError


def test_plots_return_figures_and_reject_bad_shapes():
    fig = plots.heatmap(torch.randn(3, 4), xlabels=list("abcd"), show=False)
    assert fig is not None
    assert fig.axes[0].get_xticklabels()[0].get_text() == "a"
    fig = plots.line({"train": [3, 2, 1], "test": [3, 2.5, 2]}, show=False)
    assert fig is not None
    assert len(fig.axes[0].lines) == 2
    fig = plots.attention_grid(torch.rand(3, 4, 4), list("abcd"), show=False)
    assert fig is not None
    assert sum(ax.has_data() for ax in fig.axes) == 3
    with pytest.raises(TutorialInputError):
        plots.heatmap(torch.randn(2, 3, 4))
    with pytest.raises(TutorialInputError):
        plots.attention_grid(torch.rand(3, 4, 4), list("abc"))

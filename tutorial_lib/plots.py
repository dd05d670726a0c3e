"""Plot helpers on matplotlib: lines, labelled heat maps and attention grids.

Each helper draws one figure; with show=True (the default) it is shown and None returned,
so a notebook cell ends without a second copy; show=False returns the Figure instead."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from .validation import TutorialInputError


def configure() -> None:
    """Small, consistent figures that look the same on every machine."""
    matplotlib.rcParams.update(
        {
            "figure.figsize": (6.0, 3.6),
            "figure.dpi": 90,
            "axes.grid": False,
            "font.size": 10,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "svg.hashsalt": "tutorial_lib",
        }
    )


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=float)


def _finish(fig: Figure, show: bool) -> Figure | None:
    fig.tight_layout()
    if show:
        plt.show()
        return None
    return fig


def line(
    ys: dict[str, Sequence[float]] | Sequence[float],
    x: Sequence[float] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    logx: bool = False,
    logy: bool = False,
    show: bool = True,
) -> Figure | None:
    """One or several curves: `ys` is a sequence, or a dict from label to sequence."""
    series = ys if isinstance(ys, dict) else {"": ys}
    fig, ax = plt.subplots()
    for label, y in series.items():
        y = _np(y)
        ax.plot(_np(x) if x is not None else np.arange(len(y)), y, label=label or None)
    if any(series):
        ax.legend()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    return _finish(fig, show)


def heatmap(
    values,
    xlabels: Sequence[str] | None = None,
    ylabels: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    center: bool = True,
    annotate: bool = False,
    cmap: str | None = None,
    show: bool = True,
) -> Figure | None:
    """A 2-D array as a labelled heat map; center=True puts 0 at white on a red-blue scale."""
    data = _np(values)
    if data.ndim != 2:
        raise TutorialInputError(f"heatmap needs a 2-D array [rows, columns], got shape {data.shape}.")
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * data.shape[1] + 2), max(2.5, 0.35 * data.shape[0] + 1.5)))
    if center:
        lim = float(np.abs(data).max()) or 1.0
        im = ax.imshow(data, cmap=cmap or "RdBu", vmin=-lim, vmax=lim, aspect="auto")
    else:
        im = ax.imshow(data, cmap=cmap or "viridis", aspect="auto")
    fig.colorbar(im, ax=ax)
    if xlabels is not None:
        crowded = len(xlabels) > 8 or sum(len(str(label)) for label in xlabels) > 4 * len(xlabels) + 8
        ax.set_xticks(range(len(xlabels)), list(xlabels), rotation=90 if crowded else 0)
    if ylabels is not None:
        ax.set_yticks(range(len(ylabels)), list(ylabels))
    if annotate:
        for (i, j), v in np.ndenumerate(data):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    return _finish(fig, show)


def attention_grid(
    pattern,
    tokens: Sequence[str],
    head_names: Sequence[str] | None = None,
    cols: int = 4,
    show: bool = True,
) -> Figure | None:
    """Static attention patterns, one panel per head: the fallback for circuitsvis. pattern: [heads, q, k]."""
    data = _np(pattern)
    if data.ndim != 3 or data.shape[1] != len(tokens) or data.shape[2] != len(tokens):
        raise TutorialInputError(
            f"pattern must be [heads, query_pos, key_pos] with {len(tokens)} positions, got shape {data.shape}."
        )
    n = data.shape[0]
    cols = min(cols, n)
    rows = (n + cols - 1) // cols
    size = 0.18 * len(tokens) + 1.2
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size), squeeze=False)
    for h, ax in enumerate(axes.flat):
        if h >= n:
            ax.axis("off")
            continue
        ax.imshow(data[h], cmap="Blues", vmin=0, vmax=1)
        ax.set_title(head_names[h] if head_names else f"head {h}", fontsize=9)
        ticks = range(len(tokens)) if len(tokens) <= 24 else []
        ax.set_xticks(ticks, [tokens[i] for i in ticks], rotation=90, fontsize=6)
        ax.set_yticks(ticks, [tokens[i] for i in ticks], fontsize=6)
    return _finish(fig, show)

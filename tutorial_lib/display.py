"""circuitsvis, wrapped once so that it never probes the network and notebooks stay small.

circuitsvis decides at display time by opening google.com; offline it then inlines its
1.3 MB JavaScript bundle into every output. Here the mode is decided without the network:
- "cdn": a small module import from the CDN (Colab, or when executing notebooks for the repo);
- "inline": the bundle is sent once per kernel, later views reuse it (offline laptops, CI);
- "static": no JavaScript; use the matplotlib fallbacks in `tutorial_lib.plots`.
Set TUTORIAL_CIRCUITSVIS to force a mode.
"""

from __future__ import annotations

import html
import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch

from .validation import TutorialInputError, expect_choice

MODES = ("cdn", "inline", "static")
_state = {"mode": None, "bundle_sent": False}


def configure(colab: bool = False, mode: str | None = None) -> str:
    """Choose the mode: argument, then TUTORIAL_CIRCUITSVIS, then cdn on Colab, else inline."""
    chosen = mode or os.environ.get("TUTORIAL_CIRCUITSVIS") or ("cdn" if colab else "inline")
    expect_choice(chosen, MODES, "circuitsvis mode")
    _state["mode"] = chosen
    _state["bundle_sent"] = False
    return chosen


def mode() -> str:
    chosen = _state["mode"]
    return configure() if chosen is None else chosen


def _bundle() -> str:
    import circuitsvis

    path = Path(circuitsvis.__file__).parent / "dist" / "cdn" / "iife.js"
    return path.read_text(encoding="utf-8").replace("</script>", "")


def _to_json(value) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().float().cpu().tolist()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class CircuitsVisView:
    """One circuitsvis component with its props; renders per the chosen mode."""

    def __init__(self, component: str, summary: str, **props):
        self.component = component
        self.summary = summary
        self.props = {k: _to_json(v) for k, v in props.items() if v is not None}

    def __repr__(self) -> str:  # the text/plain output: stable, so nbval can compare it
        return f"<{self.component}: {self.summary}>"

    def _repr_html_(self) -> str:
        current = mode()
        if current == "static":
            return f"<pre>{html.escape(repr(self))} (static mode: use the matplotlib plot)</pre>"
        div = f"circuits-vis-{uuid.uuid4().hex[:12]}"
        props = json.dumps(self.props)
        if current == "cdn":
            import circuitsvis

            return (
                f'<div id="{div}" style="margin: 15px 0;"></div>\n<script crossorigin type="module">\n'
                f"import {{ render, {self.component} }} from "
                f'"https://unpkg.com/circuitsvis@{circuitsvis.__version__}/dist/cdn/esm.js";\n'
                f'render("{div}", {self.component}, {props});\n</script>'
            )
        preamble = ""
        if not _state["bundle_sent"]:
            preamble = f"<script>\n{_bundle()}\nwindow.CircuitsVis = CircuitsVis;\n</script>\n"
            _state["bundle_sent"] = True
        return (
            f'{preamble}<div id="{div}" style="margin: 15px 0;"></div>\n<script>\n'
            f"(function draw(tries) {{\n"
            f"  if (window.CircuitsVis) {{ window.CircuitsVis.render('{div}', window.CircuitsVis.{self.component}, {props}); }}\n"
            f"  else if (tries > 0) {{ setTimeout(function () {{ draw(tries - 1); }}, 100); }}\n"
            f"  else {{ document.getElementById('{div}').innerText = 'circuitsvis bundle not loaded: re-run the setup cell, then this one.'; }}\n"
            f"}})(50);\n</script>"
        )


def _tokens(tokens) -> list[str]:
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) for t in tokens):
        raise TutorialInputError("tokens must be a list of strings (use model.to_str_tokens(...)).")
    return list(tokens)


def attention_heads(pattern: torch.Tensor, tokens: list[str], head_names: list[str] | None = None) -> CircuitsVisView:
    """Interactive attention patterns. pattern: [heads, query_pos, key_pos]; tokens: one string per position."""
    tokens = _tokens(tokens)
    if not isinstance(pattern, torch.Tensor) or pattern.ndim != 3:
        shape = tuple(pattern.shape) if isinstance(pattern, torch.Tensor) else type(pattern).__name__
        raise TutorialInputError(f"pattern must be a tensor [heads, query_pos, key_pos], got {shape}.")
    if pattern.shape[1] != len(tokens) or pattern.shape[2] != len(tokens):
        raise TutorialInputError(
            f"pattern covers {pattern.shape[1]}x{pattern.shape[2]} positions but {len(tokens)} tokens were given."
        )
    return CircuitsVisView(
        "AttentionHeads",
        f"{pattern.shape[0]} heads x {len(tokens)} tokens",
        attention=pattern,
        tokens=tokens,
        attentionHeadNames=head_names,
    )


def colored_tokens(tokens: list[str], values: torch.Tensor) -> CircuitsVisView:
    """Tokens shaded by one value each (e.g. an SAE latent's activation). values: [pos]."""
    tokens = _tokens(tokens)
    if not isinstance(values, torch.Tensor) or values.ndim != 1 or values.shape[0] != len(tokens):
        raise TutorialInputError(f"values must be a 1-D tensor with one value per token ({len(tokens)}).")
    return CircuitsVisView("ColoredTokens", f"{len(tokens)} tokens", tokens=tokens, values=values)

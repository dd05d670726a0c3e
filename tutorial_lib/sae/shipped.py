"""Sets of SAEs on an organism's residual stream, trained from a recipe and shipped as artefacts: each SAE
in SAELens format beside a card (the recipe, each SAE's training curve, CPU time and sha256). A claim that
rests on SAEs at several seeds and at twice the training (chapter 02's robustness tests) loads them in a
second instead of training a dozen SAEs in every CI run; one of them is retrained from the recipe in the
tests to check that the artefact is what the recipe gives.

    python -m tutorial_lib.sae.shipped          # rebuilds tutorial_lib/data/saes/toy-lm-seeds (about 3 min CPU)

Chapter 02: sparse autoencoders.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_sha256, file_sha256
from .architectures import make_sae
from .base import SAE
from .io import WEIGHTS_FILE, load_sae, save_sae
from .training import TrainHistory, train_sae

__all__ = ["SEEDS_DIR", "SEEDS_RECIPE", "build_sae_set", "load_sae_set", "sae_set_activations", "train_spec"]

CARD = "card.json"
SEEDS_DIR = Path(__file__).resolve().parent.parent / "data" / "saes" / "toy-lm-seeds"


def _spec(d_sae: int, seed: int, steps: int) -> dict[str, Any]:
    return {"name": f"topk8-d{d_sae}-seed{seed}-steps{steps}", "arch": "topk", "d_sae": d_sae, "seed": seed,
            "kw": {"k": 8}, "steps": steps}  # fmt: skip


# chapter 02 section 4-6's toy-lm SAE (the notebook trains seed 0 live) at the seeds and lengths its
# robustness tests use: seeds 0-5 and, for seeds 0 and 1, twice the training; the 64-latent SAEs of the
# feature-splitting test at seeds 2-4 and seed 2 at twice the training
SEEDS_RECIPE: dict[str, Any] = {
    "name": "toy-lm-seeds",
    "model": "toy-lm",
    "hook": "blocks.1.hook_resid_pre",
    "data": {"n_docs": 1200, "seq_len": 32, "seed": 1},
    "train": {"batch_size": 1024, "lr": 5e-3},
    "saes": [
        *[_spec(256, s, 2400) for s in range(6)],
        *[_spec(256, s, 4800) for s in (0, 1)],
        *[_spec(64, s, 2400) for s in (2, 3, 4)],
        _spec(64, 2, 4800),
    ],
}


def _check_recipe(recipe: Any) -> dict:
    if not isinstance(recipe, dict) or not {"model", "hook", "data", "train", "saes"} <= recipe.keys():
        raise TutorialInputError(
            f"recipe must be a dict like SEEDS_RECIPE (model, hook, data, train, saes), got {recipe!r:.80}."
        )
    return recipe


def sae_set_activations(recipe: dict = SEEDS_RECIPE, model=None) -> Tensor:
    """The recipe's training activations: the organism's residual stream at the recipe's hook on every
    non-pad token of its corpus documents, [n_tokens, d_model].

    Chapter 02: sparse autoencoders.
    """
    from ..organisms import load
    from ..tasks import PAD_ID, corpus_tokens

    recipe = _check_recipe(recipe)
    model = load(recipe["model"]) if model is None else model
    d = recipe["data"]
    docs = corpus_tokens(d["n_docs"], d["seq_len"], seed=d["seed"])
    with torch.no_grad():
        _, cache = model.run_with_cache(docs, names_filter=recipe["hook"])
    return cache[recipe["hook"]][docs != PAD_ID]


def train_spec(spec: dict, acts: Tensor, train: dict) -> tuple[SAE, TrainHistory]:
    """One SAE of a recipe: `spec` (arch, d_sae, seed, kw, steps, optional lr) trained on `acts` with the
    recipe's `train` settings (batch_size, lr). Returns (the SAE in eval mode, its history).

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(spec, dict) or not {"arch", "d_sae", "seed", "kw", "steps"} <= spec.keys():
        raise TutorialInputError(f"spec must be a dict with arch, d_sae, seed, kw and steps, got {spec!r:.80}.")
    sae = make_sae(spec["arch"], acts.shape[1], spec["d_sae"], seed=spec["seed"], **spec["kw"])
    hist = train_sae(sae, acts, steps=spec["steps"], batch_size=train["batch_size"], lr=spec.get("lr", train["lr"]),
                     seed=spec["seed"], log_every=100, desc=f"SAE {spec.get('name', spec['arch'])}")  # fmt: skip
    return sae.eval(), hist


def build_sae_set(out_dir: str | Path = SEEDS_DIR, recipe: dict = SEEDS_RECIPE) -> Path:
    """Train every SAE of the recipe and write it (SAELens format) with the set's `card.json`.

    Chapter 02: sparse autoencoders.
    """
    recipe = _check_recipe(recipe)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    acts = sae_set_activations(recipe)
    entries = []
    for spec in recipe["saes"]:
        sae, h = train_spec(spec, acts, recipe["train"])
        path = save_sae(sae, out / spec["name"], hook_name=recipe["hook"], model_name=recipe["model"])
        entries.append({**spec, "dir": path.name, "sha256": file_sha256(path / WEIGHTS_FILE),
                        "history": {"steps": h.steps, "loss": h.loss, "l0": h.l0},
                        "cpu_seconds": round(h.seconds, 1)})  # fmt: skip
    card = {"name": recipe.get("name", out.name), "recipe": recipe, "rebuild": "python -m tutorial_lib.sae.shipped",
            "torch": torch.__version__, "n_activations": int(acts.shape[0]), "saes": entries}  # fmt: skip
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return out


def load_sae_set(directory: str | Path = SEEDS_DIR, *, device=None) -> tuple[dict[str, SAE], dict]:
    """The shipped set: (SAEs by name, in eval mode, the card), each weights file checked against the
    card's sha256.

    Chapter 02: sparse autoencoders.
    """
    directory = Path(directory)
    if not (directory / CARD).is_file():
        raise TutorialInputError(f"{directory} must hold {CARD}; rebuild it with python -m tutorial_lib.sae.shipped")
    card = json.loads((directory / CARD).read_text())
    saes = {}
    for e in card["saes"]:
        expect_sha256(directory / e["dir"] / WEIGHTS_FILE, e["sha256"], "python -m tutorial_lib.sae.shipped")
        saes[e["name"]] = load_sae(directory / e["dir"], device=device).eval()
    return saes, card


if __name__ == "__main__":  # pragma: no cover - the recipe's entry point
    print(build_sae_set(sys.argv[1] if len(sys.argv) > 1 else SEEDS_DIR))

"""toy-lm's per-MLP transcoders shipped as an artefact: trained from `TOY_LM_RECIPE` (corpus tokens,
one TopK transcoder per MLP), stored as one safetensors file beside a card holding the recipe, the
training curves, held-out scores and the file's sha256. `load_transcoders` checks the hash;
`build_transcoders` (python -m tutorial_lib.transcoders.pretrained) retrains them from the recipe.

Chapter 08: transcoders and attribution graphs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..tasks.corpus_text import PAD_ID, corpus_tokens
from ..validation import TutorialInputError, expect_sha256, file_sha256
from .architecture import Transcoder
from .training import mlp_io, normalised_mse, train_transcoder

__all__ = ["TOY_LM_DIR", "TOY_LM_RECIPE", "build_transcoders", "load_transcoders", "train_from_recipe"]

TOY_LM_DIR = Path(__file__).resolve().parent.parent / "data" / "transcoders" / "toy-lm"
WEIGHTS, CARD = "transcoders.safetensors", "card.json"
TOY_LM_RECIPE: dict = {
    "model": "toy-lm",
    "train": {"batch": 128, "n_ctx": 32, "seed": 0},
    "test": {"batch": 64, "n_ctx": 32, "seed": 100},
    "transcoder": {"d_latent": 256, "k": 8, "steps": 600, "batch_size": 512, "lr": 3e-3, "seed": 0},
}


def train_from_recipe(
    model, recipe: dict = TOY_LM_RECIPE, layers: list[int] | None = None, **override
) -> tuple[list[Transcoder], list[list[float]]]:
    """Train the recipe's transcoder at each of `layers` (all by default) of `model`, the recipe's
    transcoder settings replaced by `override` (e.g. seed=1, steps=2400). Returns them and their curves.

    Chapter 08: transcoders and attribution graphs.
    """
    if not isinstance(recipe, dict) or not {"train", "transcoder"} <= recipe.keys():
        raise TutorialInputError(f"recipe must be a dict like TOY_LM_RECIPE, got {recipe!r:.80}.")
    settings = {**recipe["transcoder"], **override}
    data = {**recipe["train"], "seed": recipe["train"]["seed"] + settings["seed"]}
    train = corpus_tokens(data["batch"], data["n_ctx"], seed=data["seed"])
    tcs, curves = [], []
    for layer in range(model.cfg.n_layers) if layers is None else layers:
        x, y = mlp_io(model, train, layer, train != PAD_ID)
        tc, losses = train_transcoder(x, y, **settings)
        tc.hook_in, tc.hook_out = f"blocks.{layer}.ln2.hook_out", f"blocks.{layer}.hook_mlp_out"
        tcs.append(tc)
        curves.append(losses)
    return tcs, curves


def build_transcoders(model, out_dir: str | Path = TOY_LM_DIR, recipe: dict = TOY_LM_RECIPE) -> Path:
    """Train every layer's transcoder from the recipe and write the weights and the card.

    Chapter 08: transcoders and attribution graphs.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tcs, curves = train_from_recipe(model, recipe)
    tensors = {f"layer{i}.{k}": v.contiguous() for i, tc in enumerate(tcs) for k, v in tc.state_dict().items()}
    save_file(tensors, str(out / WEIGHTS))
    test = corpus_tokens(**recipe["test"])
    layers = []
    for i, (tc, losses) in enumerate(zip(tcs, curves, strict=True)):
        x, y = mlp_io(model, test, i, test != PAD_ID)
        with torch.no_grad():
            dead = float((tc.encode(x) > 0).sum(0).eq(0).float().mean())
        held_out = {"nmse": round(normalised_mse(tc, x, y), 4), "dead_fraction": round(dead, 4)}
        layers.append({"layer": i, "held_out": held_out, "loss_every_10_steps": [round(v, 5) for v in losses[::10]]})
    card = {
        "name": "toy-lm transcoders",
        "what": "chapter 08: one TopK transcoder per MLP of toy-lm (ln2 output -> MLP output)",
        "recipe": recipe,
        "rebuild": "python -m tutorial_lib.transcoders.pretrained",
        "torch": torch.__version__,
        "sha256": file_sha256(out / WEIGHTS),
        "layers": layers,
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return out


def load_transcoders(directory: str | Path = TOY_LM_DIR, *, device=None) -> tuple[list[Transcoder], dict]:
    """The shipped transcoders (sha256 checked against the card) and the card.

    Chapter 08: transcoders and attribution graphs.
    """
    directory = Path(directory)
    if not (directory / CARD).is_file() or not (directory / WEIGHTS).is_file():
        raise TutorialInputError(
            f"{directory} must hold {CARD} and {WEIGHTS}; rebuild them with python -m tutorial_lib.transcoders.pretrained"
        )
    card = json.loads((directory / CARD).read_text())
    expect_sha256(directory / WEIGHTS, card["sha256"], "python -m tutorial_lib.transcoders.pretrained")
    tensors = load_file(str(directory / WEIGHTS), device="cpu")
    settings = card["recipe"]["transcoder"]
    tcs = []
    for entry in card["layers"]:
        i = entry["layer"]
        tc = Transcoder(tensors[f"layer{i}.W_enc"].shape[0], settings["d_latent"], k=settings["k"])
        tc.load_state_dict({k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"layer{i}.")})
        tc.hook_in, tc.hook_out = f"blocks.{i}.ln2.hook_out", f"blocks.{i}.hook_mlp_out"
        tcs.append(tc.to(device).eval())
    return tcs, card


def main(argv: list[str] | None = None) -> int:
    """python -m tutorial_lib.transcoders.pretrained [OUT_DIR]: retrain the shipped transcoders.

    Chapter 08: transcoders and attribution graphs.
    """
    from ..organisms import load

    args = sys.argv[1:] if argv is None else argv
    torch.set_num_threads(1)
    out = build_transcoders(load(TOY_LM_RECIPE["model"]), args[0] if args else TOY_LM_DIR)
    print(f"wrote {out / WEIGHTS} and {out / CARD}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

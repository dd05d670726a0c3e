"""Chapter 06's SAEs on toy-lm, trained to their plateau and shipped: sections 3, 7 and 8 compare
dictionaries across seeds, splice them into the model and rank them by a downstream use, and each of
those claims needs converged SAEs (training them takes several minutes of CPU, more than a notebook may
spend). They are stored in SAELens format under tutorial_lib/data/saes/toy-lm/ with a card holding the
recipe, every training curve and the sha256 of every file, plus the decoders of shorter runs of the same
recipe (the shared fraction against training steps), a control pair trained on synthetic data with a
planted dictionary, and the SAEs the claims rest on trained 4x longer (64,000 steps: the claims' robustness
tests). `load_toy_saes` checks the hashes; `build_toy_saes` (python -m tutorial_lib.open_problems.toy_saes)
retrains everything from the recipe, `build_long_toy_saes` (... toy_saes --long) only the 4x ones.

Chapter 06: open problems.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least, expect_ndim, expect_sha256, file_sha256

__all__ = [
    "TOY_SAE_DIR",
    "TOY_SAE_RECIPE",
    "ToySAEs",
    "build_long_toy_saes",
    "build_toy_saes",
    "load_toy_saes",
    "toy_sae_activations",
    "train_toy_sae",
]

TOY_SAE_DIR = Path(__file__).resolve().parent.parent / "data" / "saes" / "toy-lm"
CARD = "card.json"
CHECKPOINTS = "checkpoints.safetensors"
_SEEDS = (1, 2, 3)  # the robustness seeds of tests/test_claims_06.py
TOY_SAE_RECIPE: dict[str, Any] = {
    "model": "toy-lm",
    "hook": "blocks.1.hook_resid_post",
    "data": {"n_docs": 2048, "seq_len": 32, "seed": 21},
    "train": {"steps": 16000, "batch_size": 512, "lr": 1e-2},
    "saes": [
        *[{"name": f"topk{k}", "arch": "topk", "d_sae": 256, "seed": 0, "kw": {"k": k}} for k in (2, 4, 8, 16)],
        {"name": "topk8 x2 width", "arch": "topk", "d_sae": 512, "seed": 2, "kw": {"k": 8}},
        # ReLU SAEs at a lower learning rate: the L1 penalty makes 1e-2 unstable
        {"name": "relu", "arch": "relu", "d_sae": 256, "seed": 0, "kw": {"l1_coeff": 0.3}, "lr": 3e-3},
        {"name": "relu l1 1.0", "arch": "relu", "d_sae": 256, "seed": 0, "kw": {"l1_coeff": 1.0}, "lr": 3e-3},
        *[
            {"name": f"{n} seed {s}", "arch": a, "d_sae": 256, "seed": s, "kw": kw}
            for s in _SEEDS
            for n, a, kw in (("topk2", "topk", {"k": 2}), ("topk8", "topk", {"k": 8}))
        ],
    ],
    # shorter runs of the same recipe (each with its own warm-up and decay) for the shared fraction vs steps
    "checkpoints": {"names": ["topk8", "topk8 seed 1"], "steps": [250, 500, 1000, 2000, 4000, 8000]},
    # the SAEs of the claims of sections 3, 7 and 8 at 4x the training (tests/test_claims_06.py)
    # (relu to topk8 seed 3 added later: every SAE of section 7's and 8's claims and section 3's four seed pairs)
    "long": {
        "names": [
            "topk2",
            "topk2 seed 1",
            "topk4",
            "topk8",
            "topk8 seed 1",
            "topk16",
            "relu",
            "relu l1 1.0",
            "topk2 seed 2",
            "topk2 seed 3",
            "topk8 seed 2",
            "topk8 seed 3",
        ],
        "steps": 64000,
    },  # fmt: skip
    # a control where the dictionary is unique: synthetic data with 256 planted features (chapter 02's)
    "control": {
        "data": {"n_samples": 30000, "d_in": 64, "n_features": 256, "l0": 8.0, "seed": 0},
        "train": {"steps": 4800, "batch_size": 256, "lr": 2e-3},
        "seeds": [0, 1],
        "k": 8,
        "d_sae": 256,
    },  # fmt: skip
}


@dataclass
class ToySAEs:
    """The shipped SAEs: `saes` by name (eval mode), their training `histories` (steps, loss, l0, dead
    fraction), the SAEs of the shorter runs `checkpoints[name][steps]`, the decoders of the two
    synthetic-data `control` SAEs (compared by cosines only), the `recipe`, each SAE's training time
    as recorded on the card (`cpu_seconds`), and the SAEs trained 4x longer `long[name]` with their
    `long_histories` (empty for a card without them).

    Chapter 06: open problems.
    """

    saes: dict[str, Any]
    histories: dict[str, dict[str, list[float]]]
    checkpoints: dict[str, dict[int, Any]]
    control: list[Tensor]
    recipe: dict
    cpu_seconds: dict[str, float]
    long: dict[str, Any] = field(default_factory=dict)
    long_histories: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def toy_sae_activations(recipe: dict = TOY_SAE_RECIPE, model=None) -> Tensor:
    """The recipe's training activations: toy-lm's residual stream at the recipe's hook on every non-pad
    token of its corpus documents, [n_tokens, d_model] (`sae.sae_set_activations`).

    Chapter 06: open problems.
    """
    from ..sae import sae_set_activations

    if not isinstance(recipe, dict) or not {"hook", "data"} <= recipe.keys():
        raise TutorialInputError(f"recipe must be a dict like TOY_SAE_RECIPE, got {recipe!r:.80}.")
    return sae_set_activations({"model": "toy-lm", "train": {}, "saes": [], **recipe}, model)


def _train(spec: dict, acts: Tensor, train: dict, steps: int | None = None):
    """One SAE of the recipe, `steps` long (default the recipe's), by `sae.train_spec`."""
    from ..sae import train_spec

    return train_spec({**spec, "steps": steps or train["steps"]}, acts, train)


def train_toy_sae(name: str, acts: Tensor, steps: int | None = None, seed: int | None = None,
                  recipe: dict = TOY_SAE_RECIPE):  # fmt: skip
    """Retrain one SAE of the recipe (by name) on `acts`, for `steps` (default the recipe's; a shorter run
    has its own warm-up and decay, like the shipped checkpoints) and with `seed` (default the recipe's).
    On CPU it reproduces the shipped weights exactly; tests/test_claims_06.py trains other seeds with it.

    Chapter 06: open problems.
    """
    specs = {s["name"]: s for s in recipe.get("saes", [])} if isinstance(recipe, dict) else {}
    if name not in specs or "train" not in recipe:
        raise TutorialInputError(f"name must be one of the recipe's SAEs {sorted(specs)}, got {name!r}.")
    acts = expect_ndim(acts, 2, "acts", "[n_tokens, d_in]")
    spec = dict(specs[name])
    if seed is not None:
        spec.update(seed=int(expect_int_at_least(seed, "seed", 0)), name=f"{name} (seed {seed})")
    return _train(spec, acts, recipe["train"], None if steps is None else expect_int_at_least(steps, "steps"))[0]


def _dirname(name: str) -> str:
    return name.replace(" ", "-").replace(".", "_")


def _control(recipe: dict) -> list:
    from ..sae import make_sae, synthetic_activations, train_sae

    c = recipe["control"]
    if not c["seeds"]:
        return []
    x, _ = synthetic_activations(**{k: v for k, v in c["data"].items() if k != "seed"}, seed=c["data"]["seed"])
    out = []
    for seed in c["seeds"]:
        sae = make_sae("topk", x.shape[1], c["d_sae"], seed=seed, k=c["k"])
        train_sae(sae, x, **c["train"], seed=seed, desc=f"control SAE seed {seed}")
        out.append(sae.eval())
    return out


def build_toy_saes(out_dir: str | Path = TOY_SAE_DIR, recipe: dict = TOY_SAE_RECIPE) -> Path:
    """Train every SAE of the recipe, the shorter runs and the control; write them and `card.json`.

    Chapter 06: open problems.
    """
    from safetensors.torch import save_file

    from ..sae import WEIGHTS_FILE, save_sae

    if not isinstance(recipe, dict) or not {"saes", "train", "checkpoints", "control"} <= recipe.keys():
        raise TutorialInputError(f"recipe must be a dict like TOY_SAE_RECIPE, got {recipe!r:.80}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    acts = toy_sae_activations(recipe)
    entries, specs = [], {s["name"]: s for s in recipe["saes"]}
    for spec in recipe["saes"]:
        sae, h = _train(spec, acts, recipe["train"])
        path = save_sae(sae, out / _dirname(spec["name"]), hook_name=recipe["hook"], model_name=recipe["model"])
        hist = {"steps": h.steps, "loss": h.loss, "l0": h.l0, "dead_fraction": h.dead_fraction}
        entries.append({**spec, "dir": path.name, "sha256": file_sha256(path / WEIGHTS_FILE), "history": hist,
                        "cpu_seconds": round(h.seconds, 1)})  # fmt: skip
    ck = recipe["checkpoints"]
    tensors = {f"{name}/{n}/{k}": v.detach().contiguous()
               for name in ck["names"] for n in ck["steps"]
               for k, v in _train(specs[name], acts, recipe["train"], steps=n)[0].state_dict().items()}  # fmt: skip
    tensors.update({f"control/{i}": sae.W_dec.detach().contiguous() for i, sae in enumerate(_control(recipe))})
    save_file(tensors, str(out / CHECKPOINTS))
    card = {
        "name": "toy-lm-saes",
        "what": "chapter 06 sections 3, 7 and 8: TopK and ReLU SAEs on toy-lm's final residual stream, trained to "
        "their plateau; shorter runs of the same recipe; a control pair on synthetic data",
        "recipe": recipe,
        "rebuild": "python -m tutorial_lib.open_problems.toy_saes",
        "torch": torch.__version__,
        "n_activations": int(acts.shape[0]),
        "checkpoints_sha256": file_sha256(out / CHECKPOINTS),
        "saes": entries,
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return build_long_toy_saes(out, recipe, acts) if recipe.get("long") else out


def _thin(values: list, every: int = 4) -> list:
    """Every `every`-th logged point of a history and its last one (a 64,000-step curve at 161 points)."""
    return values[::every] + ([values[-1]] if (len(values) - 1) % every else [])


def _long_entry(name: str, sae, h, out: Path, recipe: dict, steps: int) -> dict:
    """Save one `long` SAE beside the others and return its card entry (sha256, thinned curves, CPU time)."""
    from ..sae import WEIGHTS_FILE, save_sae

    path = save_sae(sae, out / f"{_dirname(name)}-{steps}-steps", hook_name=recipe["hook"], model_name=recipe["model"])
    hist = {
        k: _thin(v) for k, v in {"steps": h.steps, "loss": h.loss, "l0": h.l0, "dead_fraction": h.dead_fraction}.items()
    }
    return {"name": name, "steps": steps, "dir": path.name, "sha256": file_sha256(path / WEIGHTS_FILE),
            "history": hist, "cpu_seconds": round(h.seconds, 1)}  # fmt: skip


def _merge_long(card: dict, long: dict, entries: list[dict]) -> dict:
    """`card` with the recipe's `long` entry and `entries` replacing the card's entries of the same names; the
    other entries of `long["names"]` stay as they were, in the recipe's order (new names go last: additive)."""
    by_name = {e["name"]: e for e in card.get("long", [])} | {e["name"]: e for e in entries}
    return {**card, "recipe": {**card["recipe"], "long": long},
            "long": [by_name[n] for n in long["names"] if n in by_name]}  # fmt: skip


def build_long_toy_saes(out_dir: str | Path = TOY_SAE_DIR, recipe: dict = TOY_SAE_RECIPE,
                        acts: Tensor | None = None, names: list[str] | None = None) -> Path:  # fmt: skip
    """Train only the recipe's `long` SAEs (its `names` for `steps` each, otherwise the same recipe; or only
    `names` of them) into `out_dir` beside the others, and add them to its `card.json` (their sha256,
    thinned curves, CPU time); the SAEs already there, and the card's other entries, are not touched.

    Chapter 06: open problems.
    """
    long = recipe.get("long") if isinstance(recipe, dict) else None
    specs = {s["name"]: s for s in recipe.get("saes", [])} if isinstance(recipe, dict) else {}
    if not isinstance(long, dict) or "train" not in recipe or not set(long.get("names", [])) <= specs.keys():
        raise TutorialInputError(f"recipe must be a dict like TOY_SAE_RECIPE with a 'long' entry, got {recipe!r:.80}.")
    out = Path(out_dir)
    if not (out / CARD).is_file():
        raise TutorialInputError(f"{out} must hold {CARD}: build the other SAEs first (build_toy_saes).")
    if names is not None and not (isinstance(names, list) and set(names) <= set(long["names"])):
        raise TutorialInputError(f"names must be a list of the recipe's long SAEs {long['names']}, got {names!r:.80}.")
    card = json.loads((out / CARD).read_text())
    steps = expect_int_at_least(long["steps"], "recipe['long']['steps']")
    acts = toy_sae_activations(recipe) if acts is None else acts
    entries = [
        _long_entry(n, *_train(specs[n], acts, recipe["train"], steps=steps), out, recipe, steps)
        for n in (long["names"] if names is None else names)
    ]
    (out / CARD).write_text(json.dumps(_merge_long(card, long, entries), indent=1) + "\n")
    return out


def _check(path: Path, digest: str) -> None:
    expect_sha256(path, digest, "python -m tutorial_lib.open_problems.toy_saes")


def load_toy_saes(directory: str | Path = TOY_SAE_DIR, *, device=None) -> ToySAEs:
    """The shipped SAEs, each file checked against the card's sha256.

    Chapter 06: open problems.
    """
    from safetensors.torch import load_file

    from ..sae import WEIGHTS_FILE, load_sae, make_sae

    directory = Path(directory)
    if not (directory / CARD).is_file():
        raise TutorialInputError(
            f"{directory} must hold {CARD}; rebuild it with python -m tutorial_lib.open_problems.toy_saes"
        )
    card = json.loads((directory / CARD).read_text())
    saes, histories = {}, {}
    for e in card["saes"]:
        _check(directory / e["dir"] / WEIGHTS_FILE, e["sha256"])
        saes[e["name"]] = load_sae(directory / e["dir"], device=device).eval()
        histories[e["name"]] = e["history"]
    _check(directory / CHECKPOINTS, card["checkpoints_sha256"])
    flat = load_file(str(directory / CHECKPOINTS), device=str(device or "cpu"))
    specs = {e["name"]: e for e in card["saes"]}
    checkpoints: dict[str, dict[int, Any]] = {}
    for name in card["recipe"]["checkpoints"]["names"]:
        for n in card["recipe"]["checkpoints"]["steps"]:
            spec = specs[name]
            sae = make_sae(spec["arch"], saes[name].d_in, spec["d_sae"], **spec["kw"]).to(
                flat[f"{name}/{n}/W_dec"].device
            )
            sae.load_state_dict({k: flat[f"{name}/{n}/{k}"] for k in sae.state_dict()}, strict=True)
            checkpoints.setdefault(name, {})[n] = sae.eval()
    control = [flat[f"control/{i}"] for i in range(len(card["recipe"]["control"]["seeds"]))]
    seconds = {e["name"]: float(e["cpu_seconds"]) for e in card["saes"]}
    long, long_histories = {}, {}
    for e in card.get("long", []):
        _check(directory / e["dir"] / WEIGHTS_FILE, e["sha256"])
        long[e["name"]] = load_sae(directory / e["dir"], device=device).eval()
        long_histories[e["name"]] = e["history"]
    return ToySAEs(saes=saes, histories=histories, checkpoints=checkpoints, control=control, recipe=card["recipe"],
                   cpu_seconds=seconds, long=long, long_histories=long_histories)  # fmt: skip


if __name__ == "__main__":  # pragma: no cover - the recipe's entry point
    # --long: only the 4x SAEs; --long NAME ...: only those (e.g. --long "relu" "topk8 seed 2")
    _args = sys.argv[1:]
    if _args[:1] == ["--long"]:
        print(build_long_toy_saes(TOY_SAE_DIR, names=_args[1:] or None))
    else:
        print(build_toy_saes(_args[0] if _args else TOY_SAE_DIR))

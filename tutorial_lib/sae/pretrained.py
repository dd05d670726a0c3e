"""Trained SAEs shipped as artefacts: chapter 02's TopK-vs-ReLU frontier on synthetic data, trained to
its plateau (4,800 steps each, about 75 s of CPU: more than a notebook may spend), stored in SAELens
format under tutorial_lib/data/saes/ with a card holding the recipe, the training curves and the
sha256 of every weights file. `load_frontier` checks the hashes and scores the SAEs live on held-out
data; `build_frontier` (python -m tutorial_lib.sae.pretrained) retrains them from the recipe.

Beside them, `robustness.json` records the same sweep at three other seeds and the SAEs nearest the true
L0 trained twice as long (`build_robustness`, python -m tutorial_lib.sae.pretrained --robustness, about
5 minutes of CPU): the evidence behind chapter 02's robustness tests, which retrain one SAE of each
record to check that the record is what the recipe gives.

Chapter 02: sparse autoencoders.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_sha256, file_sha256
from .frontier import FrontierPoint, score_point, sweep_frontier
from .io import WEIGHTS_FILE, load_sae, save_sae
from .synthetic import synthetic_activations
from .training import TrainHistory

__all__ = [
    "FRONTIER_DIR",
    "FRONTIER_RECIPE",
    "build_frontier",
    "build_robustness",
    "frontier_data",
    "load_frontier",
    "load_robustness",
    "retrain_point",
    "seed_recipe",
]

FRONTIER_DIR = Path(__file__).resolve().parent.parent / "data" / "saes" / "synthetic-frontier"
CARD = "card.json"
ROBUSTNESS = "robustness.json"
FRONTIER_RECIPE: dict = {
    "data": {"n_samples": 60_000, "d_in": 64, "n_features": 256, "l0": 8.0, "seed": 0},
    "train_rows": [0, 30_000],
    "test_rows": [50_000, 60_000],
    "sweep": {
        "ks": [4, 8, 16, 32],
        "l1_coeffs": [1.0, 0.6, 0.3, 0.15],
        "steps": 4800,
        "batch_size": 256,
        "lr": 2e-3,
        "seed": 0,
    },
}
_HISTORY_FIELDS = ("steps", "loss", "mse", "l0", "dead_fraction")


def frontier_data(recipe: dict = FRONTIER_RECIPE) -> tuple[Tensor, Tensor, Tensor]:
    """(x_train, x_test, true_features) of the recipe's synthetic data.

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(recipe, dict) or not {"data", "train_rows", "test_rows"} <= recipe.keys():
        raise TutorialInputError(
            f"recipe must be a dict like FRONTIER_RECIPE with 'data', 'train_rows' and 'test_rows', got {recipe!r:.80}."
        )
    d = recipe["data"]
    x, true = synthetic_activations(d["n_samples"], d["d_in"], d["n_features"], d["l0"], seed=d["seed"])
    (a, b), (c, e) = recipe["train_rows"], recipe["test_rows"]
    return x[a:b], x[c:e], true


def _name(arch: str, knob: float) -> str:
    return f"{arch}-{knob:g}"


def _sweep(recipe: dict, **override) -> list[FrontierPoint]:
    """The recipe's sweep (its settings replaced by `override`), trained on the recipe's data.

    Chapter 02: sparse autoencoders.
    """
    x_train, x_test, true = frontier_data(recipe)
    sw = {**recipe["sweep"], **override}
    return sweep_frontier(
        x_train,
        x_test,
        true,
        ks=sw["ks"],
        l1_coeffs=sw["l1_coeffs"],
        steps=sw["steps"],
        batch_size=sw["batch_size"],
        lr=sw["lr"],
        seed=sw["seed"],
    )


def build_frontier(out_dir: str | Path = FRONTIER_DIR, recipe: dict = FRONTIER_RECIPE) -> Path:
    """Train the recipe's sweep and write one SAELens directory per SAE plus `card.json`.

    Chapter 02: sparse autoencoders.
    """
    out = Path(out_dir)
    if not isinstance(recipe, dict) or "sweep" not in recipe:
        raise TutorialInputError(f"recipe must be a dict like FRONTIER_RECIPE with a 'sweep', got {recipe!r:.80}.")
    points = _sweep(recipe)
    saes = []
    for p in points:
        assert p.sae is not None
        path = save_sae(p.sae, out / _name(p.arch, p.knob), model_name="synthetic")
        h = p.history
        saes.append(
            {
                "arch": p.arch,
                "knob": p.knob,
                "dir": path.name,
                "sha256": file_sha256(path / WEIGHTS_FILE),
                "held_out": {"l0": round(p.l0, 3), "ev": round(p.ev, 4), "mcc": round(p.mcc, 4)},
                "history": {f: getattr(h, f) for f in _HISTORY_FIELDS},
                "n_steps": h.n_steps,
            }
        )
    card = {
        "name": "synthetic-frontier",
        "what": "chapter 02 section 3: TopK and ReLU-L1 SAEs trained equally long on the same synthetic data",
        "recipe": recipe,
        "rebuild": "python -m tutorial_lib.sae.pretrained",
        "torch": torch.__version__,
        "saes": saes,
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return out


def load_frontier(directory: str | Path = FRONTIER_DIR, *, device=None) -> list[FrontierPoint]:
    """The shipped frontier: each SAE loaded (its sha256 checked), scored on the recipe's held-out rows.

    Chapter 02: sparse autoencoders.
    """
    directory = Path(directory)
    if not (directory / CARD).is_file():
        raise TutorialInputError(f"{directory} must hold {CARD}; rebuild it with python -m tutorial_lib.sae.pretrained")
    card = json.loads((directory / CARD).read_text())
    _, x_test, true = frontier_data(card["recipe"])
    x_test, true = x_test.to(device), true.to(device)
    points = []
    for entry in card["saes"]:
        path = directory / entry["dir"]
        expect_sha256(path / WEIGHTS_FILE, entry["sha256"], "python -m tutorial_lib.sae.pretrained")
        h = entry["history"]
        hist = TrainHistory(
            steps=list(h["steps"]),
            loss=list(h["loss"]),
            mse=list(h["mse"]),
            l0=list(h["l0"]),
            dead_fraction=list(h["dead_fraction"]),
            n_steps=entry["n_steps"],
        )
        sae = load_sae(path, device=device).eval()
        points.append(score_point(entry["arch"], float(entry["knob"]), sae, hist, x_test, true))
    return points


def seed_recipe(seed: int, recipe: dict = FRONTIER_RECIPE) -> dict:
    """`recipe` with its data and its SAEs drawn at `seed` (the robustness runs' recipe).

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TutorialInputError(f"seed must be an int, got {seed!r}.")
    return {**recipe, "data": {**recipe["data"], "seed": seed}, "sweep": {**recipe["sweep"], "seed": seed}}


def _held_out(p: FrontierPoint) -> dict:
    return {"arch": p.arch, "knob": p.knob, "l0": round(p.l0, 3), "ev": round(p.ev, 4), "mcc": round(p.mcc, 4)}


def build_robustness(
    out_dir: str | Path = FRONTIER_DIR, recipe: dict = FRONTIER_RECIPE, seeds: tuple[int, ...] = (1, 2, 3)
) -> Path:
    """Write `robustness.json`: the held-out L0, EV and MCC of the recipe's whole sweep at each of
    `seeds` (data and SAEs drawn there) and of the k=8 and l1=0.6 SAEs trained twice as long.

    Chapter 02: sparse autoencoders (the robustness record behind tests/test_claims_02.py).
    """
    if not isinstance(recipe, dict) or "sweep" not in recipe:
        raise TutorialInputError(f"recipe must be a dict like FRONTIER_RECIPE with a 'sweep', got {recipe!r:.80}.")
    runs = {f"seed {s}": {"recipe": seed_recipe(s, recipe), "override": {}} for s in seeds}
    runs["twice"] = {
        "recipe": recipe,
        "override": {"ks": [8], "l1_coeffs": [0.6], "steps": 2 * recipe["sweep"]["steps"]},
    }
    record = {
        name: {**run, "points": [_held_out(p) for p in _sweep(run["recipe"], **run["override"])]}
        for name, run in runs.items()
    }
    out = Path(out_dir) / ROBUSTNESS
    out.write_text(
        json.dumps({"rebuild": "python -m tutorial_lib.sae.pretrained --robustness", "runs": record}, indent=1) + "\n"
    )
    return out


def load_robustness(directory: str | Path = FRONTIER_DIR) -> dict[str, dict]:
    """The robustness record: per run ("seed 1", ..., "twice") its recipe, its overrides of the
    recipe's sweep, and its points (FrontierPoints without SAEs or histories).

    Chapter 02: sparse autoencoders.
    """
    path = Path(directory) / ROBUSTNESS
    if not path.is_file():
        raise TutorialInputError(
            f"{path} is missing; rebuild it with python -m tutorial_lib.sae.pretrained --robustness"
        )
    runs = json.loads(path.read_text())["runs"]
    for run in runs.values():
        run["points"] = [
            FrontierPoint(q["arch"], float(q["knob"]), q["l0"], q["ev"], q["mcc"], TrainHistory())
            for q in run["points"]
        ]
    return runs


def retrain_point(run: dict, arch: str, knob: float) -> FrontierPoint:
    """Retrain one SAE of a robustness run from its recipe (each SAE of a sweep trains on its own, so one
    alone reproduces its record).

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(run, dict) or not {"recipe", "override"} <= run.keys():
        raise TutorialInputError(f"run must be one entry of load_robustness(), got {run!r:.80}.")
    if arch not in ("topk", "relu"):
        raise TutorialInputError(f"arch must be 'topk' or 'relu', got {arch!r}.")
    ks, l1s = ([int(knob)], []) if arch == "topk" else ([], [float(knob)])
    return _sweep(run["recipe"], **{**run["override"], "ks": ks, "l1_coeffs": l1s})[0]


if __name__ == "__main__":  # pragma: no cover - the recipe's entry point
    args = [a for a in sys.argv[1:] if a != "--robustness"]
    target = args[0] if args else FRONTIER_DIR
    print(build_robustness(target) if "--robustness" in sys.argv else build_frontier(target))

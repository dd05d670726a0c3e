"""Chapter 05's phase-transition run, trained to its plateau and shipped: a 2-layer attention-only
transformer learns to copy on repeated segments while an `InductionMonitor` records, every 20 steps,
the losses and head scores of a fixed probe batch. The notebook trains the first 1600 steps live; the
converged runs (6400 steps, four seeds, and a control whose repeats are shuffled) take about 3 minutes
of CPU each, more than a notebook may spend, so they are stored under tutorial_lib/data/runs/ with a
card holding the recipe and the sha256 of every file. `train_phase_run` is the one implementation of
the run; `build_phase_runs` (python -m tutorial_lib.attention.phase_run) retrains the shipped ones from
the card's recipe, and `load_phase_run` checks their hashes.

Chapter 05: induction heads.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..tasks import RepeatedSegments, repeated_segments
from ..training import train_lm
from ..validation import TutorialInputError, expect_int_at_least, expect_sha256, file_sha256
from .monitor import InductionMonitor

__all__ = ["PHASE_DIR", "PHASE_RECIPE", "build_phase_runs", "load_phase_run", "phase_card", "phase_data", "phase_model",
           "shuffle_repeats", "train_phase_run"]  # fmt: skip

PHASE_DIR = Path(__file__).resolve().parent.parent / "data" / "runs" / "induction-phase"
CARD = "card.json"
PHASE_RECIPE: dict[str, Any] = {
    "model": {
        "n_layers": 2,
        "d_model": 64,
        "n_heads": 2,
        "d_head": 32,
        "d_vocab": 64,
        "n_ctx": 32,
        "attn_only": True,
        "normalization_type": "LN",
    },  # fmt: skip
    "data": {"seq_len": 32, "d_vocab": 64, "period": [2, 12], "offset": [0, 7]},
    "train": {"batch": 64, "lr": 1e-3, "weight_decay": 0.01, "warmup": 50},
    "monitor": {"every": 20, "probe_batch": 200, "probe_seed": 1234},
    "steps": 6400,
    "runs": [
        {"seed": 1, "shuffled": False},
        {"seed": 0, "shuffled": False},
        {"seed": 2, "shuffled": False},
        {"seed": 3, "shuffled": False},
        {"seed": 1, "shuffled": True},
    ],  # fmt: skip
}


def phase_data(recipe: dict = PHASE_RECIPE) -> dict:
    """The run's data settings as `tasks.repeated_segments` keyword arguments (seq_len, d_vocab, period, offset).

    Chapter 05: induction heads.
    """
    if not isinstance(recipe, dict) or not isinstance(recipe.get("data"), dict):
        raise TutorialInputError(f"recipe must be a dict like PHASE_RECIPE with a 'data' dict, got {recipe!r:.80}.")
    d = recipe["data"]
    return {
        "seq_len": d["seq_len"],
        "d_vocab": d["d_vocab"],
        "period": tuple(d["period"]),
        "offset": tuple(d["offset"]),
    }


def phase_model(seed: int, recipe: dict = PHASE_RECIPE):
    """A fresh model of the run's architecture (TransformerBridge), initialised from `seed`.

    Chapter 05: induction heads.
    """
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    expect_int_at_least(seed, "seed", 0)
    cfg = TransformerBridgeConfig(**recipe["model"], seed=seed, device="cpu")
    return TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue]


def shuffle_repeats(batch: RepeatedSegments, gen: torch.Generator) -> Tensor:
    """The batch's tokens with each row's second copy permuted: the same tokens in another order, so that
    copying "a token seen before" can still help but looking up the next one cannot.

    Chapter 05: induction heads.
    """
    if not isinstance(batch, RepeatedSegments):
        raise TutorialInputError(f"batch must be a tasks.RepeatedSegments, got {type(batch).__name__}.")
    if not isinstance(gen, torch.Generator):
        raise TutorialInputError(f"gen must be a torch.Generator, got {type(gen).__name__}.")
    tokens = batch.tokens.clone()
    for row in range(tokens.shape[0]):
        start = int(batch.start[row] + batch.period[row])
        span = tokens[row, start : start + int(batch.period[row])]
        tokens[row, start : start + len(span)] = span[torch.randperm(len(span), generator=gen)]
    return tokens


def train_phase_run(
    seed: int,
    steps: int,
    *,
    shuffled: bool = False,
    measure: Callable[..., dict[str, Any]] | None = None,
    recipe: dict = PHASE_RECIPE,
) -> tuple[Any, dict[str, Tensor]]:
    """Train the run's model from `seed` for `steps` AdamW steps (constant learning rate after the warm-up, so
    a shorter run is the prefix of a longer one); the monitor (`measure`, default `probe_measures`) records
    the probe batch every `recipe["monitor"]["every"]` steps. Returns (model, monitor history).

    Chapter 05: induction heads.
    """
    expect_int_at_least(steps, "steps")
    model = phase_model(seed, recipe)
    mon, tr, data = recipe["monitor"], recipe["train"], phase_data(recipe)
    probe = repeated_segments(batch=mon["probe_batch"], seed=mon["probe_seed"], **data)
    monitor = InductionMonitor(every=mon["every"], probe=probe, measure=measure)
    gen = torch.Generator().manual_seed(seed)

    def batch_fn(_step: int) -> Tensor:
        batch = repeated_segments(batch=tr["batch"], seed=gen, **data)
        return shuffle_repeats(batch, gen) if shuffled else batch.tokens

    train_lm(model, batch_fn, steps=steps, lr=tr["lr"], weight_decay=tr["weight_decay"], warmup=tr["warmup"],
             callback=monitor, every=mon["every"], seed=seed, num_threads=1, desc=f"phase run, seed {seed}")  # fmt: skip
    return model, monitor.history()


def _stem(seed: int, shuffled: bool) -> str:
    return f"seed{seed}" + ("-shuffled" if shuffled else "")


def build_phase_runs(out_dir: str | Path = PHASE_DIR, recipe: dict = PHASE_RECIPE) -> Path:
    """Train every run of the recipe; write its weights, its monitor history (safetensors) and `card.json`.

    Chapter 05: induction heads.
    """
    import time

    from safetensors.torch import save_file

    if not isinstance(recipe, dict) or "runs" not in recipe:
        raise TutorialInputError(f"recipe must be a dict like PHASE_RECIPE, got {recipe!r:.80}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    runs = []
    for run in recipe["runs"]:
        start = time.process_time()
        model, hist = train_phase_run(run["seed"], recipe["steps"], shuffled=run["shuffled"], recipe=recipe)
        stem = _stem(run["seed"], run["shuffled"])
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(out / f"{stem}.safetensors")
        )
        save_file({k: v.contiguous() for k, v in hist.items()}, str(out / f"{stem}-history.safetensors"))
        files = {f: file_sha256(out / f) for f in (f"{stem}.safetensors", f"{stem}-history.safetensors")}
        runs.append({**run, "files": files, "cpu_seconds": round(time.process_time() - start)})
    card = {
        "name": "induction-phase",
        "what": "chapter 05 section 3: the live phase-transition run, continued to its plateau, at four seeds, "
        "and a control trained on shuffled repeats",
        "recipe": recipe,
        "rebuild": "python -m tutorial_lib.attention.phase_run",
        "torch": torch.__version__,
        "runs": runs,
    }
    (out / CARD).write_text(json.dumps(card, indent=1) + "\n")
    return out


def phase_card(directory: str | Path = PHASE_DIR) -> dict:
    """The shipped runs' card (recipe, files and their sha256).

    Chapter 05: induction heads.
    """
    path = Path(directory) / CARD
    if not path.is_file():
        raise TutorialInputError(f"{path} is missing: rebuild it with python -m tutorial_lib.attention.phase_run")
    return json.loads(path.read_text())


def load_phase_run(seed: int = 1, shuffled: bool = False, directory: str | Path = PHASE_DIR) -> tuple[Any, dict]:
    """A shipped run: (its trained model, its monitor history), both checked against the card's sha256.

    Chapter 05: induction heads.
    """
    from safetensors.torch import load_file

    directory = Path(directory)
    card = phase_card(directory)
    run = next((r for r in card["runs"] if r["seed"] == seed and r["shuffled"] == shuffled), None)
    if run is None:
        have = [(r["seed"], r["shuffled"]) for r in card["runs"]]
        raise TutorialInputError(f"no shipped run with seed={seed}, shuffled={shuffled}; the card has {have}.")
    for name, digest in run["files"].items():
        expect_sha256(directory / name, digest, "python -m tutorial_lib.attention.phase_run")
    stem = _stem(seed, shuffled)
    model = phase_model(seed, card["recipe"])
    model.load_state_dict(load_file(str(directory / f"{stem}.safetensors")), strict=True)
    return model.eval(), load_file(str(directory / f"{stem}-history.safetensors"))


if __name__ == "__main__":  # pragma: no cover - the recipe's entry point
    print(build_phase_runs(sys.argv[1] if len(sys.argv) > 1 else PHASE_DIR))

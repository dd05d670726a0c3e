"""Chapter 07's minimal-circuits problem: which attention-only models, trained on ioi-3l's data with its
recipe, solve IOI, and at which seeds. The sweep (`python -m tutorial_lib.organisms.minimal`, about 20
minutes of CPU) trains one layer x one head, one layer x two heads and two layers x one head at three seeds,
and the failed runs again at four times the training (of a size that fails at every seed, the first seed's), and writes each run's IOI measurements to
tutorial_lib/data/measured/ioi-minimal-sweep.json. One layer x two heads at seed 0 is the shipped `ioi-1l`.

Chapter 07: circuit discovery.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

from ..tokenizer import load_tokenizer
from ..validation import TutorialInputError
from .loading import DATA_DIR
from .recipes import RECIPES, Recipe, build
from .reports import MEASURES

__all__ = ["MINIMAL_RECORD", "MINIMAL_SEEDS", "MINIMAL_SIZES", "load_minimal_sweep", "minimal_recipe", "minimal_sweep"]

MINIMAL_SIZES = ((1, 1), (1, 2), (2, 1))  # (layers, heads per layer)
MINIMAL_SEEDS = (0, 1, 2)
MINIMAL_RECORD = DATA_DIR.parent / "measured" / "ioi-minimal-sweep.json"
_KEEP = ("ioi_acc", "ioi_logit_diff", "ioi_third_name", "second_clause_name_logit")


def minimal_recipe(n_layers: int, n_heads: int, seed: int, steps: int | None = None) -> Recipe:
    """ioi-3l's recipe (data, schedule, width) with `n_layers` layers of `n_heads` heads, seeded at `seed`.

    Chapter 07: circuit discovery.
    """
    for v, name in ((n_layers, "n_layers"), (n_heads, "n_heads")):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 4:
            raise TutorialInputError(f"{name} must be an int in [1, 4], got {v!r}.")
    base = RECIPES["ioi-3l"]
    d_head = base.config["d_model"] // n_heads
    config = {**base.config, "n_layers": n_layers, "n_heads": n_heads, "d_head": d_head, "seed": seed}
    train = {**base.train, "seed": seed, **({} if steps is None else {"steps": steps})}
    return replace(base, config=config, train=train, measure="ioi-1l")


def _run(n_layers: int, n_heads: int, seed: int, steps: int | None = None) -> dict:
    r = minimal_recipe(n_layers, n_heads, seed, steps)
    model = build(r, tokenizer=load_tokenizer(DATA_DIR / "ioi-3l"))
    notes = r.fit(model, r)
    props = MEASURES[r.measure](model)
    return {"layers": n_layers, "heads": n_heads, "seed": seed, "steps": r.train["steps"], **notes,
            **{k: props[k] for k in _KEEP}}  # fmt: skip


def minimal_sweep(out: str | Path = MINIMAL_RECORD, sizes=MINIMAL_SIZES, seeds=MINIMAL_SEEDS, longer: int = 4) -> Path:
    """Train every size at every seed; rerun below 95 % IOI accuracy at `longer` times the steps: every failed
    run of a size that solves IOI at some seed, and the first seed's of a size that solves it at none.

    Chapter 07: circuit discovery.
    """
    runs = [_run(n_layers, n_heads, seed) for n_layers, n_heads in sizes for seed in seeds]
    failed = [r for r in runs if r["ioi_acc"] < 0.95]
    never = {(r["layers"], r["heads"]) for r in failed} - {(r["layers"], r["heads"]) for r in runs if r not in failed}
    again = [r for r in failed if (r["layers"], r["heads"]) not in never or r["seed"] == seeds[0]]
    runs += [_run(r["layers"], r["heads"], r["seed"], longer * r["steps"]) for r in again]
    record = {"rebuild": "python -m tutorial_lib.organisms.minimal", "recipe": "ioi-3l's, with the sizes changed",
              "runs": runs}  # fmt: skip
    Path(out).write_text(json.dumps(record, indent=1) + "\n")
    return Path(out)


def load_minimal_sweep(path: str | Path = MINIMAL_RECORD) -> list[dict]:
    """The recorded runs of `minimal_sweep`. Chapter 07: circuit discovery."""
    path = Path(path)
    if not path.is_file():
        raise TutorialInputError(f"{path} is missing; rebuild it with python -m tutorial_lib.organisms.minimal")
    return json.loads(path.read_text())["runs"]


if __name__ == "__main__":  # pragma: no cover - the sweep's entry point
    print(minimal_sweep(sys.argv[1] if len(sys.argv) > 1 else MINIMAL_RECORD))

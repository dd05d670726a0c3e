"""Re-running a recipe and re-measuring a card: `python -m tutorial_lib.organisms train|measure|list`."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

from .. import tasks
from ..tokenizer import load_tokenizer, save_word_tokenizer
from .loading import CARD, DATA_DIR, WEIGHTS, OrganismError, load_local, names, organism_dir, sha256
from .recipes import INDUCTION_DATA, RECIPES, build
from .reports import MEASURES


def train(name: str, out: str | Path | None = None) -> dict:
    """Train `name` from its recipe, measure its properties and write weights, tokenizer and card to `out`."""
    from safetensors.torch import save_file

    if name not in RECIPES:
        raise OrganismError(f"No recipe {name!r}; recipes: {', '.join(sorted(RECIPES))}.")
    r = RECIPES[name]
    out = Path(out) if out is not None else DATA_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    save_word_tokenizer(r.vocab(), out)
    model = build(name, tokenizer=load_tokenizer(out))
    t0 = time.time()
    notes = r.fit(model, r)
    seconds = time.time() - t0
    props = MEASURES[r.measure](model)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS))
    c = {
        "name": name,
        "config": r.config,
        "recipe": {k: list(v) if isinstance(v, tuple) else v for k, v in r.train.items()},
        "data": INDUCTION_DATA if name == "induction-2l" else {"corpus_mix": r.train.get("mix", tasks.CORPUS_MIX)},
        "sha256": sha256(out / WEIGHTS),
        "training_seconds": round(seconds, 1),
        "trained_on": f"{platform.machine()} cpu, torch {torch.__version__}, {os.cpu_count()} cores, "
        f"torch threads {r.train.get('num_threads') or torch.get_num_threads()}, load average at end "
        f"{os.getloadavg()[0]:.1f}",
        "notes": notes,
        "properties": props,
    }
    (out / CARD).write_text(json.dumps(c, indent=2) + "\n")
    return c


def remeasure(name: str, root: str | Path | None = None) -> dict:
    """Measure a trained organism's properties again and write them into its card (weights unchanged)."""
    model = load_local(name, None, root)
    props = MEASURES[RECIPES[name].measure](model)
    path = organism_dir(name, root) / CARD
    c = json.loads(path.read_text())
    c["properties"] = props
    path.write_text(json.dumps(c, indent=2) + "\n")
    return props


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tutorial_lib.organisms")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="re-run an organism's recipe and write its files and card")
    t.add_argument("name", choices=sorted(RECIPES))
    t.add_argument("--out", default=None, help="output directory (default: the shipped location)")
    t.add_argument("--steps", type=int, default=None, help="override the recipe's step count (experiments)")
    t.add_argument("--seed", type=int, default=None, help="override the recipe's seed (experiments)")
    m = sub.add_parser("measure", help="re-measure an organism's properties and update its card")
    m.add_argument("name", choices=sorted(RECIPES))
    m.add_argument("--dir", default=None, help="organism directory (default: the shipped location)")
    sub.add_parser("list", help="list the shipped organisms")
    a = p.parse_args(argv)
    if a.cmd == "list":
        print("\n".join(names()))
        return
    if a.cmd == "measure":
        print(json.dumps(remeasure(a.name, a.dir), indent=2))
        return
    if a.steps is not None:
        RECIPES[a.name].train["steps"] = a.steps
    if a.seed is not None:
        RECIPES[a.name].train["seed"] = a.seed
        RECIPES[a.name].config["seed"] = a.seed
    c = train(a.name, a.out)
    print(json.dumps({k: c[k] for k in ("name", "training_seconds", "properties")}, indent=2))

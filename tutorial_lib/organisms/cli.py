"""Re-running a recipe, re-measuring and sealing a card: `python -m tutorial_lib.organisms train|measure|seal|list`."""

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
from .loading import (
    CARD,
    DATA_DIR,
    WEIGHTS,
    OrganismError,
    OrganismFileError,
    card,
    config_changes,
    integrity,
    load_local,
    names,
    organism_dir,
    sha256,
    verify,
)
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
        "integrity": integrity(out, r.config),
        "training_seconds": round(seconds, 1),
        "trained_on": f"{platform.machine()} cpu, torch {torch.__version__}, {os.cpu_count()} cores, "
        f"torch threads {r.train.get('num_threads') or torch.get_num_threads()}, load average at end "
        f"{os.getloadavg()[0]:.1f}",
        "notes": notes,
        "properties": props,
    }
    _write_card(out / CARD, c)
    return c


def remeasure(name: str, root: str | Path | None = None) -> dict:
    """Measure a trained organism's properties again and write them into its card (weights unchanged)."""
    model = load_local(name, None, root)
    props = MEASURES[RECIPES[name].measure](model)
    path = organism_dir(name, root) / CARD
    c = json.loads(path.read_text())
    c["properties"] = props
    _write_card(path, c)
    return props


def _write_card(path: Path, c: dict) -> None:
    path.write_text(json.dumps(c, indent=2) + "\n")


def seal(name: str, root: str | Path | None = None) -> dict:
    """Write the integrity record of `name`'s present files into its card (weights and tokenizer unchanged).
    Refuses a config that is not the recipe's, a tokenizer whose vocabulary is not the recipe's, and weights
    that do not match the card's existing sha256: sealing must not bless a corrupted file."""
    d = organism_dir(name, root)
    c = card(name, root)
    path = d / CARD
    if name not in RECIPES or c.get("name") != name:
        raise OrganismFileError(f"{path}: only the card of a recipe's organism ({', '.join(sorted(RECIPES))}) "
                                f"can be sealed, and its 'name' must be {name!r}; got {c.get('name')!r}.")  # fmt: skip
    changes = config_changes(name, c.get("config") or {})
    if changes:
        raise OrganismFileError(f"{path}: its 'config' is not the recipe's ({changes}); restore the card "
                                f"(git checkout) or retrain: python -m tutorial_lib.organisms train {name}")  # fmt: skip
    vocab = json.loads((d / "tokenizer.json").read_text()).get("model", {}).get("vocab")
    if vocab != {w: i for i, w in enumerate(RECIPES[name].vocab())}:
        raise OrganismFileError(f"{d / 'tokenizer.json'}: its vocabulary is not the recipe's; restore it "
                                f"(git checkout) or retrain: python -m tutorial_lib.organisms train {name}")  # fmt: skip
    if "sha256" in c and sha256(d / WEIGHTS) != c["sha256"]:
        raise OrganismFileError(f"{d / WEIGHTS}: does not match the card's sha256; restore it (git checkout) "
                                f"or retrain: python -m tutorial_lib.organisms train {name}")  # fmt: skip
    record = integrity(d, c["config"])
    items = [(k, v) for k, v in c.items() if k != "integrity"]
    at = next((i + 1 for i, (k, _) in enumerate(items) if k == "sha256"), len(items))
    _write_card(path, dict(items[:at] + [("sha256", record[WEIGHTS]), ("integrity", record)] + items[at:]))
    verify(name, root)
    return record


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
    s = sub.add_parser("seal", help="write the integrity record of an organism's files into its card")
    s.add_argument("name", choices=sorted(RECIPES))
    s.add_argument("--dir", default=None, help="organism directory (default: the shipped location)")
    sub.add_parser("list", help="list the shipped organisms")
    a = p.parse_args(argv)
    if a.cmd == "list":
        print("\n".join(names()))
        return
    if a.cmd == "seal":
        print(json.dumps(seal(a.name, a.dir), indent=2))
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

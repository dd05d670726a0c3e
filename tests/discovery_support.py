"""Helpers for the tests of tutorial_lib.discovery: an offline GPT-2-architecture bridge, the mapping between
TransformerLens' edge Nodes and our graph's indices, and a plain one-forward-per-edge-set reference that
ablates edges through the bridge's own forward and hook points (independent of discovery's per-edge forward).
"""

from __future__ import annotations

import torch
from patching_support import ORGANISMS
from transformer_lens.model_bridge import TransformerBridge
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from tutorial_lib.discovery import build_graph, sender_outputs


def gpt2_bridge(n_layer=2, n_head=4, n_embd=32, device="cpu", seed=0):
    """A randomly initialised GPT-2-architecture bridge, as `TUTORIAL_MODEL=gpt2` loads one, offline."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from tutorial_lib import tasks
    from tutorial_lib.tokenizer import load_tokenizer

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, vocab_size=len(tasks.VOCAB), n_positions=32)
    hf = GPT2LMHeadModel(config).eval()
    model = TransformerBridge.boot_transformers("gpt2", hf_model=hf, tokenizer=load_tokenizer(ORGANISMS / "toy-lm"),
                                                device=str(device))  # fmt: skip
    model.enable_compatibility_mode()
    return model.eval()


def tl_index(g, node, reader: bool) -> int:
    """Our sender or receiver index of a TransformerLens attribution Node."""
    if not reader:
        if node.kind == "embed":
            return 0
        return g.head_sender(node.layer, node.head) if node.kind == "attn_head_out" else g.mlp_sender(node.layer)
    if node.kind in ("q_input", "k_input", "v_input"):
        return g.head_receiver(node.layer, node.head, node.kind[0])
    return g.mlp_receiver(node.layer) if node.kind == "mlp_in" else g.logits_receiver


def _raw(module):
    """The wrapped torch module (calling the bridge component would fire its hook aliases again)."""
    return getattr(module, "original_component", module)


def _delta(live, repl, senders):
    return sum(live[s] - repl[:, :, s] for s in senders)


def plain_edge_logits(model, tokens, corrupted, ablated: list[tuple[int, int]]):
    """Logits of ONE run on `tokens` with the edges (sender, receiver) in `ablated` carrying the corrupted
    run's sender outputs, through the bridge's own modules: each receiver's input is rebuilt at its hook point
    (a head's q/k/v from its layer's hook_resid_pre, an MLP from hook_resid_mid, the logits at the last
    hook_resid_post)."""
    g = build_graph(model)
    repl = sender_outputs(model, corrupted)
    live: dict[int | str, torch.Tensor] = {}
    by_receiver: dict[int, list[int]] = {}
    for s, r in ablated:
        by_receiver.setdefault(r, []).append(s)
    hooks = []

    def embed_hook(x, hook):  # noqa: ARG001
        live[0] = x + model.W_pos[: x.shape[1]]

    def z_hook(z, hook, layer):  # noqa: ARG001
        for h in range(g.n_heads):
            live[g.head_sender(layer, h)] = z[:, :, h] @ model.W_O[layer, h]

    def mlp_hook(out, hook, layer):  # noqa: ARG001
        r = g.mlp_receiver(layer)
        if r in by_receiver:
            block = model.blocks[layer]
            out = _raw(block.mlp)(_raw(block.ln2)(live["mid"] - _delta(live, repl, by_receiver[r])))
        live[g.mlp_sender(layer)] = out
        return out

    def qkv_hook(x, hook, layer, kind):  # noqa: ARG001
        x = x.clone()
        for h in range(g.n_heads):
            r = g.head_receiver(layer, h, kind)
            if r in by_receiver:
                inp = _raw(model.blocks[layer].ln1)(live["pre"] - _delta(live, repl, by_receiver[r]))
                weight, bias = getattr(model, f"W_{kind.upper()}"), getattr(model, f"b_{kind.upper()}")
                x[:, :, h] = inp @ weight[layer, h] + bias[layer, h]
        return x

    def store(name):
        def hook(x, hook):  # noqa: ARG001
            live[name] = x

        return hook

    def final_hook(x, hook):  # noqa: ARG001
        return x - _delta(live, repl, by_receiver.get(g.logits_receiver, []))

    hooks.append(("hook_embed", embed_hook))
    for layer in range(g.n_layers):
        hooks.append((get_act_name("resid_pre", layer), store("pre")))
        for kind in "qkv":
            hooks.append(
                (get_act_name(kind, layer), lambda x, hook, layer=layer, kind=kind: qkv_hook(x, hook, layer, kind))
            )
        hooks.append((get_act_name("z", layer), lambda z, hook, layer=layer: z_hook(z, hook, layer)))
        if g.has_mlp:
            hooks.append((get_act_name("resid_mid", layer), store("mid")))
            hooks.append((get_act_name("mlp_out", layer), lambda o, hook, layer=layer: mlp_hook(o, hook, layer)))
    hooks.append((get_act_name("resid_post", g.n_layers - 1), final_hook))
    with torch.no_grad():
        return model.run_with_hooks(tokens, fwd_hooks=hooks)


def acdc_one_by_one(model, clean, corrupted, threshold, distance=None):
    """ACDC as Conmy et al. state it, one full forward per tried edge (no speculation, no prefix reuse):
    receivers from the logits backwards, senders latest first. Returns (kept mask, scores, n_forwards)."""
    from tutorial_lib.discovery.acdc import kl_to
    from tutorial_lib.discovery.edges import run_edges, stages

    g = build_graph(model)
    with torch.no_grad():
        if distance is None:
            distance = kl_to(model(clean))
        ablate = torch.zeros(g.n_senders, g.n_receivers, dtype=torch.bool, device=clean.device)
        current = float(distance(run_edges(model, clean, corrupted, ablate)[0][0]))
        scores = torch.full(g.valid.shape, float("nan"), dtype=torch.float64)
        n = 1
        for st in reversed(stages(g)):
            for r in reversed(st.receivers):
                for s in reversed(range(g.n_senders)):
                    if not g.valid[s, r]:
                        continue
                    trial = ablate.clone()
                    trial[s, r] = True
                    value = float(distance(run_edges(model, clean, corrupted, trial)[0][0]))
                    n += 1
                    scores[s, r] = value - current
                    if value - current < threshold:
                        ablate, current = trial, value
    return (g.valid.to(ablate.device) & ~ablate).cpu(), scores, n


def llama_edge_logits(model, tokens, corrupted, ablated: list[tuple[int, int]]):
    """Logits of ONE run on `tokens` with the edges in `ablated` carrying the corrupted run's sender outputs,
    through the wrapped Hugging Face Llama's own modules (hooks on its projections and norms): a query head's
    input is rebuilt for its slice of q_proj, a key/value head's for its slice of k_proj / v_proj (so k and
    v edges must be ablated alike for every query head of a group), an MLP's at post_attention_layernorm,
    the logits' at the final norm. Independent of discovery's per-edge forward but for `sender_outputs`."""
    g, cfg, hf = build_graph(model), model.cfg, model.original_model
    dh, group = cfg.d_head, cfg.n_heads // cfg.n_key_value_heads
    repl = sender_outputs(model, corrupted)
    by_receiver: dict[int, list[int]] = {}
    for s, r in ablated:
        by_receiver.setdefault(r, []).append(s)
    live: dict = {}

    def delta(r):
        return sum((live[s] - repl[:, :, s] for s in by_receiver.get(r, [])), torch.zeros_like(live["pre"]))

    def proj_hook(layer, kind):
        def hook(module, args, out):  # noqa: ARG001
            out, weight = out.clone(), _raw(module).weight
            n = cfg.n_heads if kind == "q" else cfg.n_key_value_heads
            for h in range(n):
                heads = [h] if kind == "q" else list(range(h * group, (h + 1) * group))
                sets = {tuple(sorted(by_receiver.get(g.head_receiver(layer, q, kind), []))) for q in heads}
                assert len(sets) == 1, "k and v edges must be ablated alike across a key/value group"
                if sets != {()}:
                    x = hf.model.layers[layer].input_layernorm.forward(
                        live["pre"] - delta(g.head_receiver(layer, heads[0], kind))
                    )
                    out[..., h * dh : (h + 1) * dh] = x @ weight[h * dh : (h + 1) * dh].T
            return out

        return hook

    hooks = [hf.model.embed_tokens.register_forward_hook(lambda m, a, out: live.__setitem__(0, out))]  # noqa: ARG005
    for layer, block in enumerate(hf.model.layers):
        attn = block.self_attn

        def pre(m, args, kwargs, layer=layer):  # noqa: ARG001
            live["pre"] = args[0] if args else kwargs["hidden_states"]

        def z_hook(m, args, layer=layer):
            for h in range(cfg.n_heads):
                live[g.head_sender(layer, h)] = (
                    args[0][..., h * dh : (h + 1) * dh] @ _raw(m).weight[:, h * dh : (h + 1) * dh].T
                )

        def ln2_hook(m, args, out, layer=layer):
            r = g.mlp_receiver(layer)
            return m.forward(args[0] - delta(r)) if r in by_receiver else out

        hooks += [
            block.register_forward_pre_hook(pre, with_kwargs=True),
            attn.o_proj.register_forward_pre_hook(z_hook),
            block.post_attention_layernorm.register_forward_hook(ln2_hook),
            block.mlp.register_forward_hook(lambda m, a, out, layer=layer: live.__setitem__(g.mlp_sender(layer), out)),  # noqa: ARG005
        ]
        hooks += [getattr(attn, f"{k}_proj").register_forward_hook(proj_hook(layer, k)) for k in "qkv"]
    hooks.append(hf.model.norm.register_forward_pre_hook(lambda m, args: (args[0] - delta(g.logits_receiver),)))  # noqa: ARG005
    try:
        with torch.no_grad():
            return hf(tokens).logits
    finally:
        for h in hooks:
            h.remove()

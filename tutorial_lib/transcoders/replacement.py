"""The replacement model: every MLP's output replaced by its transcoder's prediction, plus (optionally)
an error term = true MLP output - transcoder prediction on the clean run, which makes it exact."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from ..hooks import per_token_loss
from ..validation import TutorialInputError
from .architecture import Transcoder

__all__ = [
    "latent_activations",
    "mlp_errors",
    "untrained_transcoders",
    "replacement_logits",
    "replacement_loss_recovered",
]


def _check(model, transcoders: Sequence[Transcoder]) -> None:
    if len(transcoders) != model.cfg.n_layers or not all(isinstance(t, Transcoder) for t in transcoders):
        raise TutorialInputError(
            f"transcoders must be a list of {model.cfg.n_layers} Transcoder objects (one per layer), "
            f"got {[type(t).__name__ for t in transcoders]}."
        )


def _predict(tc: Transcoder, x: Tensor) -> Tensor:
    return tc(x.reshape(-1, x.shape[-1])).reshape(x.shape)


@torch.no_grad()
def mlp_errors(
    model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "batch pos"]
) -> list[Float[Tensor, "batch pos d_model"]]:
    """Per layer, the error node values: the true MLP output minus the transcoder's prediction from the
    true MLP input, on the clean run.

    Chapter 08: transcoders and attribution graphs.
    """
    _check(model, transcoders)
    names = {f"blocks.{i}.{h}" for i in range(model.cfg.n_layers) for h in ("ln2.hook_out", "hook_mlp_out")}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return [
        cache[f"blocks.{i}.hook_mlp_out"] - _predict(tc, cache[f"blocks.{i}.ln2.hook_out"])
        for i, tc in enumerate(transcoders)
    ]


def replacement_logits(
    model,
    transcoders: Sequence[Transcoder],
    tokens: Int[Tensor, "batch pos"],
    errors: Sequence[Tensor] | None = None,
    edit_latents: Callable[[int, Tensor], Tensor] | None = None,
    fwd_hooks: Sequence[tuple[str, Callable]] = (),
) -> Float[Tensor, "batch pos vocab"]:
    """Logits of the model with every MLP replaced by its transcoder (fed the replacement model's own
    MLP input), plus `errors[i]` at layer i when given (from `mlp_errors`: then the logits are exact).
    `edit_latents(layer, z)` may change the latent codes z [batch, pos, d_latent] (an intervention);
    `fwd_hooks` are added to the run (e.g. attention patterns or norm scales held at cached values).

    Chapter 08: transcoders and attribution graphs.
    """
    _check(model, transcoders)
    stash: dict[int, Tensor] = {}
    hooks = []
    for i, tc in enumerate(transcoders):

        def grab(act, hook, i=i):  # noqa: ARG001 - TransformerLens's hook interface
            stash[i] = act
            return act

        def replace(act, hook, i=i, tc=tc):  # noqa: ARG001
            x = stash[i]
            z = tc.encode(x.reshape(-1, x.shape[-1])).reshape(*x.shape[:-1], tc.d_sae)
            if edit_latents is not None:
                z = edit_latents(i, z)
            out = tc.decode(z.reshape(-1, tc.d_sae)).reshape(act.shape).to(act.dtype)
            return out if errors is None else out + errors[i]

        hooks += [(f"blocks.{i}.ln2.hook_out", grab), (f"blocks.{i}.hook_mlp_out", replace)]
    return model.run_with_hooks(tokens, fwd_hooks=hooks + list(fwd_hooks))


@torch.no_grad()
def replacement_loss_recovered(
    model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "batch pos"], loss_mask: Tensor | None = None
) -> dict[str, float]:
    """Next-token loss: clean, with every MLP replaced (errors dropped), with every MLP zero-ablated, and
    recovered = (L_zero - L_replaced) / (L_zero - L_clean).

    Chapter 08: transcoders and attribution graphs.
    """
    _check(model, transcoders)
    mask = torch.ones_like(tokens[:, 1:], dtype=torch.bool) if loss_mask is None else loss_mask

    def loss(logits: Tensor) -> float:
        nll = per_token_loss(logits, tokens)
        return float((nll * mask).sum() / mask.sum().clamp_min(1))

    zero = [(f"blocks.{i}.hook_mlp_out", lambda act, hook: torch.zeros_like(act)) for i in range(model.cfg.n_layers)]  # noqa: ARG005
    clean = loss(model(tokens))
    replaced = loss(replacement_logits(model, transcoders, tokens))
    ablated = loss(model.run_with_hooks(tokens, fwd_hooks=zero))
    return {
        "clean_loss": clean,
        "replaced_loss": replaced,
        "zero_ablation_loss": ablated,
        "recovered": (ablated - replaced) / (ablated - clean),
    }


@torch.no_grad()
def latent_activations(
    model, transcoders: Sequence[Transcoder], tokens: Int[Tensor, "batch pos"]
) -> list[Float[Tensor, "batch pos d_latent"]]:
    """Per layer, every transcoder latent's activation on the clean run of `tokens`.

    Chapter 08: transcoders and attribution graphs.
    """
    _check(model, transcoders)
    names = {f"blocks.{i}.ln2.hook_out" for i in range(model.cfg.n_layers)}
    _, cache = model.run_with_cache(tokens, names_filter=lambda n: n in names)
    return [tc.encode(cache[f"blocks.{i}.ln2.hook_out"].flatten(0, 1)).reshape(*tokens.shape, tc.d_sae)
            for i, tc in enumerate(transcoders)]  # fmt: skip


@torch.no_grad()
def untrained_transcoders(
    model, tokens: Int[Tensor, "batch pos"], mask: Tensor | None = None, d_latent: int = 256, k: int = 8
) -> list[Transcoder]:
    """The control for chapter 08's claims: one randomly initialised transcoder per MLP, its decoder bias
    set to the mean MLP output on `tokens` (so it predicts the mean, plus noise from random latents).

    Chapter 08: transcoders and attribution graphs.
    """
    out = []
    for layer in range(model.cfg.n_layers):
        names = (f"blocks.{layer}.hook_mlp_out",)
        _, cache = model.run_with_cache(tokens, names_filter=lambda n, names=names: n in names)
        y = cache[names[0]]
        tc = Transcoder(model.cfg.d_model, d_latent, k=k, seed=layer)
        tc.b_dec.copy_((y[mask] if mask is not None else y.flatten(0, 1)).mean(0))
        out.append(tc.eval())
    return out

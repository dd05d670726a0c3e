"""Measurements for chapter 06, open problems as experiments: scaling counts, circuit coverage,
direct versus total effects (self-repair), distance from the activation distribution, subspace
patching (the interpretability illusion), rank agreement of proxy metrics, and compute equivalents.

Each function is small and checked against an analytic answer in tests/test_open_problems.py.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from ..hooks import apply_final_norm, head_ablation_hook, logit_directions
from ..validation import (
    TutorialInputError,
    expect_finite,
    expect_heads,
    expect_ids,
    expect_last_dim,
    expect_model,
    expect_ndim,
    expect_number,
    expect_same_shape,
    expect_scalar,
    expect_shape,
    expect_tokens,
    expect_values,
)

# ----------------------------------------------------------------------------------------------
# 2. Coverage: how much of a behaviour a circuit explains


def fraction_recovered(
    clean: Float[Tensor, "..."] | float, circuit: Float[Tensor, "..."] | float, ablated: Float[Tensor, "..."] | float
) -> Float[Tensor, "..."]:
    """(circuit - ablated) / (clean - ablated): 1 when the circuit alone matches the model, 0 when it
    does no better than ablating everything. The same formula serves losses and logit differences.

    Chapter 06: open problems as experiments. Reference for Exercise 06.1.
    """
    clean, circuit, ablated = (
        expect_values(v, n) for v, n in ((clean, "clean"), (circuit, "circuit"), (ablated, "ablated"))
    )
    if clean.shape != circuit.shape or clean.shape != ablated.shape or bool((clean == ablated).any()):
        raise TutorialInputError("clean, circuit and ablated must have one shape, and clean must differ from ablated.")
    return (circuit - ablated) / (clean - ablated)


def component_means(model, tokens: Int[Tensor, "batch pos"], mlps: bool = True) -> dict[str, Tensor]:
    """Mean of every hook_z (and mlp_out) over the batch, per position: the mean-ablation values.

    Chapter 06: open problems as experiments (mean ablation).
    """

    def keep(name: str) -> bool:
        return name.endswith("attn.hook_z") or (mlps and name.endswith("hook_mlp_out"))

    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=keep)
    return {name: act.mean(0, keepdim=True) for name, act in cache.items()}


def _mean_hook(means: dict[str, Tensor], name: str):
    """A hook on `name` that replaces the whole activation by its mean over the batch, position by position."""

    def hook_mean(act, hook):  # noqa: ARG001 - TransformerLens passes hook=
        return means[name][:, : act.shape[1]].to(act.dtype).expand_as(act).clone()

    return hook_mean


def circuit_hooks(model, keep_heads: set[tuple[int, int]], means: dict[str, Tensor], ablate_mlps: bool = False):
    """Forward hooks that mean-ablate every head outside `keep_heads` (and every MLP, if asked).

    Chapter 06: open problems as experiments (circuit coverage).
    """
    if keep_heads:
        expect_heads(keep_heads, expect_model(model), "keep_heads")
    missing = [get_act_name("z", layer) for layer in range(model.cfg.n_layers) if get_act_name("z", layer) not in means]
    if missing:
        raise TutorialInputError(f"means lacks {missing}: make it with component_means(model, tokens).")
    hooks = []
    for layer in range(model.cfg.n_layers):
        drop = [h for h in range(model.cfg.n_heads) if (layer, h) not in keep_heads]
        name = get_act_name("z", layer)
        if drop:
            hooks.append((name, head_ablation_hook(drop, means[name])))
        mlp = get_act_name("mlp_out", layer)
        if ablate_mlps and not model.cfg.attn_only:
            hooks.append((mlp, _mean_hook(means, mlp)))
    return hooks


@torch.no_grad()
def circuit_coverage(model, tokens, metric: Callable[[Tensor], Tensor], keep_heads, means, ablate_mlps=False) -> dict:
    """metric on the clean model, with only `keep_heads` left (the rest mean-ablated), and with every
    head ablated; plus the fraction recovered.

    Chapter 06: open problems as experiments (circuit coverage). Reference for Exercise 06.2.
    """
    tokens = expect_tokens(tokens, "tokens", expect_model(model))
    hooks_in, hooks_out = (circuit_hooks(model, set(k), means, ablate_mlps) for k in (keep_heads, ()))
    clean = float(expect_scalar(metric(model(tokens)), "metric"))
    circuit = float(expect_scalar(metric(model.run_with_hooks(tokens, fwd_hooks=hooks_in)), "metric"))
    ablated = float(expect_scalar(metric(model.run_with_hooks(tokens, fwd_hooks=hooks_out)), "metric"))
    return {
        "clean": clean,
        "circuit": circuit,
        "ablated": ablated,
        "recovered": float(fraction_recovered(clean, circuit, ablated)),
    }


# ----------------------------------------------------------------------------------------------
# 3. Do two dictionaries agree?


def max_cosines(W_a: Float[Tensor, "n_a d"], W_b: Float[Tensor, "n_b d"]) -> Float[Tensor, " n_a"]:
    """For each row of W_a (a decoder direction), its largest cosine similarity with any row of W_b.

    Chapter 06: open problems as experiments. Reference for Exercise 06.3.
    """
    for W, name in ((W_a, "W_a"), (W_b, "W_b")):
        expect_finite(expect_ndim(W, 2, name, "[n, d]"), name)
    if W_a.shape[1] != W_b.shape[1] or not W_b.shape[0]:
        raise TutorialInputError(
            f"W_a and W_b must share d and W_b needs rows, got {tuple(W_a.shape)} and {tuple(W_b.shape)}."
        )
    a = W_a / W_a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    b = W_b / W_b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return (a @ b.T).max(-1).values


# ----------------------------------------------------------------------------------------------
# 4. Direct versus total effect (self-repair)


def direct_effect(
    delta_out: Float[Tensor, "batch d_model"],
    scale: Float[Tensor, "batch 1"],
    direction: Float[Tensor, "batch d_model"],
) -> Float[Tensor, " batch"]:
    """Change of a logit difference caused by adding `delta_out` to the final residual stream with
    the final LayerNorm's scale frozen: centre delta_out over d_model, divide by the scale, project on
    `direction` (W_U[:, a] - W_U[:, b], already multiplied by the LayerNorm weight).

    Chapter 06: open problems as experiments. Reference for Exercise 06.4.
    """
    expect_same_shape(expect_ndim(delta_out, 2, "delta_out", "[batch, d_model]"), direction, "delta_out and direction")
    expect_shape(scale, (delta_out.shape[0], 1), "scale", "[batch, 1]")
    if not bool((expect_finite(scale, "scale") > 0).all()):
        raise TutorialInputError("scale must be positive (a LayerNorm scale), got a zero or negative entry.")
    centred = delta_out - delta_out.mean(-1, keepdim=True)
    return (centred / scale * direction).sum(-1)


@torch.no_grad()
def direct_and_total_effects(model, tokens, answer, wrong, end_pos, means: dict[str, Tensor]) -> dict[str, Tensor]:
    """For every head: total effect (drop of the logit difference at end_pos when the head is
    mean-ablated and the rest of the model runs on) and direct effect (drop through the head's own
    path to the logits only, the final norm's scale frozen: `hooks.apply_final_norm`, which centres for
    LayerNorm, as `direct_effect`, and not for RMSNorm). Both [n_layers, n_heads].

    Chapter 06: open problems as experiments (self-repair). Reference for Exercise 06.6.
    """
    cfg = expect_model(model).cfg
    tokens = expect_tokens(tokens, "tokens", model)
    V, P = cfg.d_vocab, tokens.shape[1]
    for t, name, size in ((answer, "answer", V), (wrong, "wrong", V), (end_pos, "end_pos", P)):
        expect_shape(expect_ids(t, name, size), (tokens.shape[0],), name, "[batch]")
    rows = torch.arange(tokens.shape[0])
    logits, cache = model.run_with_cache(
        tokens, names_filter=lambda n: n.endswith("attn.hook_z") or n == "ln_final.hook_scale"
    )

    def ld(lg):
        lg = lg[rows, end_pos]
        return (lg.gather(1, answer[:, None]) - lg.gather(1, wrong[:, None]))[:, 0]

    clean = ld(logits)
    direction = logit_directions(model, answer, wrong).detach()  # [batch, d_model], the final norm's gain in it
    total = torch.zeros(cfg.n_layers, cfg.n_heads)
    direct = torch.zeros(cfg.n_layers, cfg.n_heads)
    for layer in range(cfg.n_layers):
        name = get_act_name("z", layer)
        z = cache[name][rows, end_pos]  # [batch, head, d_head]
        z_mean = means[name][0, end_pos]  # [batch, head, d_head]
        W_O = model.W_O[layer].detach()
        for head in range(cfg.n_heads):
            delta = (z_mean[:, head] - z[:, head]) @ W_O[head]  # through the model's final norm, scale frozen
            direct[layer, head] = -(apply_final_norm(model, cache, delta, (rows, end_pos)) * direction).sum(-1).mean()
            hook = head_ablation_hook([head], means[name])
            total[layer, head] = (clean - ld(model.run_with_hooks(tokens, fwd_hooks=[(name, hook)]))).mean()
    return {"direct": direct, "total": total, "clean": clean.mean()}


def self_repair_fraction(direct: Tensor | float, total: Tensor | float) -> Tensor:
    """(direct - total) / direct: the share of a component's direct effect that the rest of the
    model makes up for when it is ablated (0: none, 1: all; negative: the ablation hurts more).

    Chapter 06: open problems as experiments. Reference for Exercise 06.5.
    """
    direct, total = expect_values(direct, "direct"), expect_values(total, "total")
    if not bool(direct.all()):
        raise TutorialInputError("direct must be non-zero: a component with no direct effect has no share to repair.")
    return (direct - total) / direct


# ----------------------------------------------------------------------------------------------
# 5. How far interventions move activations from their distribution


def mahalanobis(
    x: Float[Tensor, "n d"], mean: Float[Tensor, " d"], cov: Float[Tensor, "d d"], ridge: float = 0.0
) -> Float[Tensor, " n"]:
    """sqrt((x - mean)^T (cov + ridge * mean(diag) * I)^-1 (x - mean)) per row; the ridge keeps a
    rank-deficient covariance invertible.

    Chapter 06: open problems as experiments. Reference for Exercise 06.7.
    """
    x = expect_finite(expect_ndim(x, 2, "x", "[n, d]"), "x")
    expect_number(ridge, "ridge", 0.0)
    d = x.shape[1]
    expect_shape(mean, (d,), "mean", "[d]")
    expect_shape(cov, (d, d), "cov", "[d, d]")
    c = cov.double() + ridge * cov.double().diagonal().mean() * torch.eye(d, dtype=torch.float64, device=cov.device)
    diff = x.double() - mean.double()
    sol, info = torch.linalg.solve_ex(c, diff.T)
    if int(info):
        raise TutorialInputError("cov is singular: pass ridge > 0 (e.g. 1e-3) to make it invertible.")
    sol = sol.T
    return (diff * sol).sum(-1).clamp_min(0).sqrt().to(x.dtype)


def gaussian_stats(x: Float[Tensor, "n d"]) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the rows of x.

    Chapter 06: open problems as experiments (distance from the activation distribution).
    """
    x = expect_finite(expect_ndim(x, 2, "x", "[n, d]"), "x")
    if x.shape[0] < 2:
        raise TutorialInputError(f"x needs at least 2 rows for a covariance, got {x.shape[0]}.")
    mean = x.mean(0)
    xc = x - mean
    return mean, xc.T @ xc / max(x.shape[0] - 1, 1)


# ----------------------------------------------------------------------------------------------
# 6. Subspace patching (Makelov et al. 2023)


def patch_subspace(
    h: Float[Tensor, "batch d"], h_source: Float[Tensor, "batch d"], basis: Float[Tensor, "k d"]
) -> Float[Tensor, "batch d"]:
    """Replace the component of h inside span(basis) by that of h_source; keep the rest of h.
    The basis rows need not be orthonormal (they are orthonormalised first).

    Chapter 06: open problems as experiments. Reference for Exercise 06.9.
    """
    basis = expect_finite(expect_ndim(basis, 2, "basis", "[k, d]"), "basis")
    expect_same_shape(expect_last_dim(h, basis.shape[1], "h", "d (basis's)"), h_source, "h and h_source")
    if torch.linalg.matrix_rank(basis.double()) < basis.shape[0]:
        raise TutorialInputError("basis rows must be linearly independent (no zero or repeated direction).")
    q, _ = torch.linalg.qr(basis.T.to(h.dtype))  # [d, k] orthonormal columns
    return h + (h_source - h) @ q @ q.T


# ----------------------------------------------------------------------------------------------
# 8. Do proxy metrics agree with downstream use?


def ranks(x: Tensor) -> Tensor:
    """Ranks 0..n-1 of a 1-D tensor (ties broken by position).

    Chapter 06: open problems as experiments (rank agreement of proxy metrics).
    """
    x = expect_finite(expect_ndim(torch.as_tensor(x), 1, "x", "[n]"), "x")
    r = torch.empty(x.shape[0], dtype=torch.float64)
    r[x.argsort(stable=True)] = torch.arange(x.shape[0], dtype=torch.float64)
    return r


def spearman(a: Float[Tensor, " n"], b: Float[Tensor, " n"]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (no ties assumed).

    Chapter 06: open problems as experiments. Reference for Exercise 06.11.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape or a.ndim != 1 or a.numel() < 2:
        raise TutorialInputError(
            f"a and b must be 1-D of the same length >= 2, got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-30))


__all__ = [
    "circuit_coverage",
    "circuit_hooks",
    "component_means",
    "direct_and_total_effects",
    "direct_effect",
    "fraction_recovered",
    "gaussian_stats",
    "mahalanobis",
    "max_cosines",
    "patch_subspace",
    "ranks",
    "self_repair_fraction",
    "spearman",
]

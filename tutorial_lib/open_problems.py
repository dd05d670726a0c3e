"""Measurements for chapter 06, open problems as experiments: scaling counts, circuit coverage,
direct versus total effects (self-repair), distance from the activation distribution, subspace
patching (the interpretability illusion), rank agreement of proxy metrics, and compute equivalents.

Each function is small and checked against an analytic answer in tests/test_open_problems.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor
from transformer_lens.utilities import get_act_name  # pyright: ignore[reportPrivateImportUsage]

from .hooks import head_ablation_hook
from .validation import TutorialInputError, expect_ndim, expect_range, expect_shape

# ----------------------------------------------------------------------------------------------
# 1. Scaling: published configurations (no weights needed)

# n_layers, n_heads (query heads), d_model, d_mlp, parameters. Sources: GPT-2, Radford et al. 2019
# (sizes as in the Hugging Face configs); Llama 2, Touvron et al. 2023 (Table 1 and the released
# configs, d_mlp = intermediate_size); Llama 3.1 405B, Grattafiori et al. 2024 (Table 3);
# SmolLM2-135M, Allal et al. 2025 (the released config).
PUBLISHED_CONFIGS: dict[str, dict] = {
    "gpt2-small": dict(n_layers=12, n_heads=12, d_model=768, d_mlp=3072, params=124e6),
    "gpt2-medium": dict(n_layers=24, n_heads=16, d_model=1024, d_mlp=4096, params=355e6),
    "gpt2-large": dict(n_layers=36, n_heads=20, d_model=1280, d_mlp=5120, params=774e6),
    "gpt2-xl": dict(n_layers=48, n_heads=25, d_model=1600, d_mlp=6400, params=1558e6),
    "smollm2-135m": dict(n_layers=30, n_heads=9, d_model=576, d_mlp=1536, params=135e6),
    "llama2-7b": dict(n_layers=32, n_heads=32, d_model=4096, d_mlp=11008, params=6.7e9),
    "llama2-13b": dict(n_layers=40, n_heads=40, d_model=5120, d_mlp=13824, params=13.0e9),
    "llama2-70b": dict(n_layers=80, n_heads=64, d_model=8192, d_mlp=28672, params=69.0e9),
    "llama3.1-405b": dict(n_layers=126, n_heads=128, d_model=16384, d_mlp=53248, params=405e9),
}


def unit_counts(cfg) -> dict[str, int]:
    """Heads and MLP neurons of a model from its config (a dict or a model.cfg): what a person would inspect.

    Chapter 06: open problems as experiments (scaling: how many units to inspect).
    """
    get = (lambda k: cfg[k]) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k))
    n_layers, n_heads = int(get("n_layers")), int(get("n_heads"))
    attn_only = bool(cfg.get("attn_only", False) if isinstance(cfg, dict) else getattr(cfg, "attn_only", False))
    d_mlp = 0 if attn_only else int(get("d_mlp") or 0)
    return {"heads": n_layers * n_heads, "neurons": n_layers * d_mlp}


def log_log_slope(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> float:
    """Least-squares slope of log(y) against log(x): the exponent b of y ~ a x^b.

    Chapter 06: open problems as experiments (scaling exponents).
    """
    lx = torch.as_tensor(x, dtype=torch.float64).log()
    ly = torch.as_tensor(y, dtype=torch.float64).log()
    if lx.ndim != 1 or lx.shape != ly.shape or lx.numel() < 2:
        raise TutorialInputError(
            f"x and y must be 1-D of the same length >= 2, got {tuple(lx.shape)} and {tuple(ly.shape)}."
        )
    lx, ly = lx - lx.mean(), ly - ly.mean()
    return float((lx * ly).sum() / (lx * lx).sum().clamp_min(1e-30))


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall-clock seconds of fn() over `repeats` runs after `warmup` untimed runs.

    Chapter 06: open problems as experiments (scaling: timing a method).
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# ----------------------------------------------------------------------------------------------
# 2. Coverage: how much of a behaviour a circuit explains


def fraction_recovered(
    clean: Float[Tensor, "..."] | float, circuit: Float[Tensor, "..."] | float, ablated: Float[Tensor, "..."] | float
) -> Float[Tensor, "..."]:
    """(circuit - ablated) / (clean - ablated): 1 when the circuit alone matches the model, 0 when it
    does no better than ablating everything. The same formula serves losses and logit differences.

    Chapter 06: open problems as experiments. Reference for Exercise 06.1.
    """
    clean, circuit, ablated = (torch.as_tensor(v, dtype=torch.float32) for v in (clean, circuit, ablated))
    return (circuit - ablated) / (clean - ablated)


def component_means(model, tokens: Int[Tensor, "batch pos"], mlps: bool = True) -> dict[str, Tensor]:
    """Mean of every hook_z (and mlp_out) over the batch, per position: the mean-ablation values.

    Chapter 06: open problems as experiments (mean ablation).
    """

    def keep(name: str) -> bool:
        return name.endswith("attn.hook_z") or (mlps and name.endswith("hook_mlp_out"))

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

    Chapter 06: open problems as experiments (circuit coverage).
    """
    clean = float(metric(model(tokens)))
    circuit = float(
        metric(model.run_with_hooks(tokens, fwd_hooks=circuit_hooks(model, set(keep_heads), means, ablate_mlps)))
    )
    ablated = float(metric(model.run_with_hooks(tokens, fwd_hooks=circuit_hooks(model, set(), means, ablate_mlps))))
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

    Chapter 06: open problems as experiments. Reference for Exercise 06.2.
    """
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

    Chapter 06: open problems as experiments. Reference for Exercise 06.3.
    """
    centred = delta_out - delta_out.mean(-1, keepdim=True)
    return (centred / scale * direction).sum(-1)


@torch.no_grad()
def direct_and_total_effects(model, tokens, answer, wrong, end_pos, means: dict[str, Tensor]) -> dict[str, Tensor]:
    """For every head: total effect (drop of the logit difference at end_pos when the head is
    mean-ablated and the rest of the model runs on) and direct effect (drop through the head's own
    path to the logits only, final LayerNorm scale frozen). Both [n_layers, n_heads].

    Chapter 06: open problems as experiments (self-repair).
    """
    cfg = model.cfg
    rows = torch.arange(tokens.shape[0])
    last = f"blocks.{cfg.n_layers - 1}.hook_resid_post"
    logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("attn.hook_z") or n == last)

    def ld(lg):
        lg = lg[rows, end_pos]
        return (lg.gather(1, answer[:, None]) - lg.gather(1, wrong[:, None]))[:, 0]

    clean = ld(logits)
    resid = cache[last][rows, end_pos]
    resid = resid - resid.mean(-1, keepdim=True)
    eps = getattr(cfg, "eps", 1e-5)
    scale = (resid.pow(2).mean(-1, keepdim=True) + eps).sqrt()
    w_u = model.W_U.detach()
    direction = (w_u[:, answer] - w_u[:, wrong]).T
    if hasattr(model, "ln_final") and getattr(model.ln_final, "weight", None) is not None:
        direction = direction * model.ln_final.weight.detach()
    total = torch.zeros(cfg.n_layers, cfg.n_heads)
    direct = torch.zeros(cfg.n_layers, cfg.n_heads)
    for layer in range(cfg.n_layers):
        name = get_act_name("z", layer)
        z = cache[name][rows, end_pos]  # [batch, head, d_head]
        z_mean = means[name][0, end_pos]  # [batch, head, d_head]
        W_O = model.W_O[layer].detach()
        for head in range(cfg.n_heads):
            delta = (z_mean[:, head] - z[:, head]) @ W_O[head]
            direct[layer, head] = -direct_effect(delta, scale, direction).mean()
            hook = head_ablation_hook([head], means[name])
            total[layer, head] = (clean - ld(model.run_with_hooks(tokens, fwd_hooks=[(name, hook)]))).mean()
    return {"direct": direct, "total": total, "clean": clean.mean()}


def self_repair_fraction(direct: Tensor | float, total: Tensor | float) -> Tensor:
    """(direct - total) / direct: the share of a component's direct effect that the rest of the
    model makes up for when it is ablated (0: none, 1: all; negative: the ablation hurts more).

    Chapter 06: open problems as experiments. Reference for Exercise 06.4.
    """
    direct, total = torch.as_tensor(direct, dtype=torch.float32), torch.as_tensor(total, dtype=torch.float32)
    return (direct - total) / direct


# ----------------------------------------------------------------------------------------------
# 5. How far interventions move activations from their distribution


def mahalanobis(
    x: Float[Tensor, "n d"], mean: Float[Tensor, " d"], cov: Float[Tensor, "d d"], ridge: float = 0.0
) -> Float[Tensor, " n"]:
    """sqrt((x - mean)^T (cov + ridge * mean(diag) * I)^-1 (x - mean)) per row; the ridge keeps a
    rank-deficient covariance invertible.

    Chapter 06: open problems as experiments. Reference for Exercise 06.5.
    """
    x = expect_ndim(x, 2, "x", "[n, d]")
    d = x.shape[1]
    expect_shape(mean, (d,), "mean", "[d]")
    expect_shape(cov, (d, d), "cov", "[d, d]")
    c = cov.double() + ridge * cov.double().diagonal().mean() * torch.eye(d, dtype=torch.float64, device=cov.device)
    diff = x.double() - mean.double()
    sol = torch.linalg.solve(c, diff.T).T
    return (diff * sol).sum(-1).clamp_min(0).sqrt().to(x.dtype)


def gaussian_stats(x: Float[Tensor, "n d"]) -> tuple[Tensor, Tensor]:
    """Mean and covariance of the rows of x.

    Chapter 06: open problems as experiments (distance from the activation distribution).
    """
    x = expect_ndim(x, 2, "x", "[n, d]")
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

    Chapter 06: open problems as experiments. Reference for Exercise 06.6.
    """
    basis = expect_ndim(basis, 2, "basis", "[k, d]")
    q, _ = torch.linalg.qr(basis.T.to(h.dtype))  # [d, k] orthonormal columns
    return h + (h_source - h) @ q @ q.T


# ----------------------------------------------------------------------------------------------
# 8. Do proxy metrics agree with downstream use?


def ranks(x: Tensor) -> Tensor:
    """Ranks 0..n-1 of a 1-D tensor (ties broken by position).

    Chapter 06: open problems as experiments (rank agreement of proxy metrics).
    """
    x = expect_ndim(torch.as_tensor(x), 1, "x", "[n]")
    r = torch.empty(x.shape[0], dtype=torch.float64)
    r[x.argsort(stable=True)] = torch.arange(x.shape[0], dtype=torch.float64)
    return r


def spearman(a: Float[Tensor, " n"], b: Float[Tensor, " n"]) -> float:
    """Spearman's rank correlation: the Pearson correlation of the ranks (no ties assumed).

    Chapter 06: open problems as experiments. Reference for Exercise 06.8.
    """
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    if a.shape != b.shape or a.ndim != 1 or a.numel() < 2:
        raise TutorialInputError(
            f"a and b must be 1-D of the same length >= 2, got {tuple(a.shape)} and {tuple(b.shape)}."
        )
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-30))


# ----------------------------------------------------------------------------------------------
# 7. Compute equivalents


def steps_to_reach(steps: Sequence[float], losses: Sequence[float], target: float) -> float:
    """First training step at which a loss curve falls to `target`, interpolating linearly between
    the logged steps; inf if it never does, steps[0] if it starts below.

    Chapter 06: open problems as experiments. Reference for Exercise 06.7.
    """
    s = [float(v) for v in steps]
    lv = [float(v) for v in losses]
    if len(s) != len(lv) or not s:
        raise TutorialInputError(f"steps and losses must have the same non-zero length, got {len(s)} and {len(lv)}.")
    if lv[0] <= target:
        return s[0]
    for i in range(1, len(s)):
        if lv[i] <= target:
            frac = (lv[i - 1] - target) / (lv[i - 1] - lv[i])
            return s[i - 1] + frac * (s[i] - s[i - 1])
    return math.inf


def transformer_flops(n_params: float, n_tokens: float, training: bool = True) -> float:
    """The usual estimate: 6 N D FLOPs to train on D tokens, 2 N D for a forward pass (Kaplan et al. 2020).

    Chapter 06: open problems as experiments (compute equivalents).
    """
    expect_range(n_params, "n_params", 0.0)
    return (6.0 if training else 2.0) * n_params * n_tokens


__all__ = [
    "PUBLISHED_CONFIGS",
    "circuit_coverage",
    "circuit_hooks",
    "component_means",
    "direct_and_total_effects",
    "direct_effect",
    "fraction_recovered",
    "gaussian_stats",
    "log_log_slope",
    "mahalanobis",
    "max_cosines",
    "median_seconds",
    "patch_subspace",
    "ranks",
    "self_repair_fraction",
    "spearman",
    "steps_to_reach",
    "transformer_flops",
    "unit_counts",
]

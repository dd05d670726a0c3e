"""Chapter 06's counting and timing: published model sizes, units to inspect, scaling exponents, timing a
method, and compute equivalents (steps to reach a loss, training FLOPs)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from ..validation import TutorialInputError, expect_int_at_least, expect_number, expect_values

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
    get = (lambda k: cfg.get(k)) if isinstance(cfg, dict) else (lambda k: getattr(cfg, k, None))
    n_layers, n_heads = (expect_int_at_least(get(k), f"cfg's {k}") for k in ("n_layers", "n_heads"))
    attn_only = bool(cfg.get("attn_only", False) if isinstance(cfg, dict) else getattr(cfg, "attn_only", False))
    d_mlp = 0 if attn_only else int(get("d_mlp") or 0)
    return {"heads": n_layers * n_heads, "neurons": n_layers * d_mlp}


def log_log_slope(x: Sequence[float] | Tensor, y: Sequence[float] | Tensor) -> float:
    """Least-squares slope of log(y) against log(x): the exponent b of y ~ a x^b.

    Chapter 06: open problems as experiments (scaling exponents).
    """
    lx, ly = (expect_values(v, n, torch.float64, positive=True).log() for v, n in ((x, "x"), (y, "y")))
    if lx.ndim != 1 or lx.shape != ly.shape or lx.numel() < 2:
        raise TutorialInputError(
            f"x and y must be 1-D of the same length >= 2, got {tuple(lx.shape)} and {tuple(ly.shape)}."
        )
    lx, ly = lx - lx.mean(), ly - ly.mean()
    if not bool(lx.any()):
        raise TutorialInputError("x must hold at least two different values to fit a slope.")
    return float((lx * ly).sum() / (lx * lx).sum().clamp_min(1e-30))


def median_seconds(fn: Callable[[], object], repeats: int = 3, warmup: int = 1, statistic: str = "median") -> float:
    """Median (or, with statistic="min", the fastest) wall-clock seconds of fn() over `repeats` runs after
    `warmup` untimed runs. The minimum is what to compare on a loaded machine: other work only adds time.

    Chapter 06: open problems as experiments (scaling: timing a method).
    """
    if not callable(fn):
        raise TutorialInputError(f"fn must be a callable taking no arguments, got {type(fn).__name__}.")
    expect_int_at_least(repeats, "repeats")
    expect_int_at_least(warmup, "warmup", 0)
    if statistic not in ("median", "min"):
        raise TutorialInputError(f"statistic must be 'median' or 'min', got {statistic!r}.")
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) if statistic == "min" else sorted(times)[len(times) // 2]


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call fn(), counted by torch's FlopCounterMode (matrix products and
    attention; elementwise work is not counted). Unlike a wall-clock time, the count is the same on every
    machine and under any load, so a cost model can be asserted on it.

    Chapter 06: open problems as experiments (scaling: the cost of a method).
    """
    from torch.utils.flop_counter import FlopCounterMode

    if not callable(fn):
        raise TutorialInputError(f"fn must be a callable taking no arguments, got {type(fn).__name__}.")
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def random_transformer(n_layers: int, d_model: int, d_vocab: int = 2000, n_ctx: int = 32, seed: int = 0):
    """An untrained TransformerBridge of toy-lm's architecture (LayerNorm, GELU MLP of 4 d_model, heads of
    64 dimensions): a family of sizes on which to time a method. Weights do not change the time.

    Chapter 06: open problems as experiments (scaling: timing a method as the model grows).
    """
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    n_layers, d_model = expect_int_at_least(n_layers, "n_layers"), expect_int_at_least(d_model, "d_model", 64)
    torch.manual_seed(seed)
    cfg = TransformerBridgeConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=d_model // 64,
        d_head=64,
        d_mlp=4 * d_model,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        normalization_type="LN",
        act_fn="gelu",
        device="cpu",
    )
    return TransformerBridge.boot_native(cfg).eval()  # pyright: ignore[reportAttributeAccessIssue]


# ----------------------------------------------------------------------------------------------
# 7. Compute equivalents


def steps_to_reach(steps: Sequence[float], losses: Sequence[float], target: float) -> float:
    """First training step at which a loss curve falls to `target`, interpolating linearly between
    the logged steps; inf if it never does, steps[0] if it starts below.

    Chapter 06: open problems as experiments. Reference for Exercise 06.10.
    """
    s = [float(v) for v in steps]
    lv = [float(v) for v in losses]
    if len(s) != len(lv) or not s:
        raise TutorialInputError(f"steps and losses must have the same non-zero length, got {len(s)} and {len(lv)}.")
    expect_number(target, "target")
    if not all(map(math.isfinite, s + lv)) or any(b <= a for a, b in zip(s, s[1:])):
        raise TutorialInputError("steps must increase and steps and losses must be finite numbers.")
    if lv[0] <= target:
        return s[0]
    for i in range(1, len(s)):
        if lv[i] <= target:
            frac = (lv[i - 1] - target) / (lv[i - 1] - lv[i])
            return s[i - 1] + frac * (s[i] - s[i - 1])
    return math.inf


def compute_equivalent(steps: Sequence[float], losses: Sequence[float], target: float, total_steps: float) -> float:
    """The share of a training run of `total_steps` steps after which its loss curve first reached `target`:
    `steps_to_reach` on the curve cut at `total_steps`, divided by `total_steps`. math.inf when the curve
    never got there within the run (the target is at least as good as the finished model, as far as the
    curve resolves), never a share above 1 read off a curve that continues past the run.

    Chapter 06: open problems as experiments (compute equivalents).
    """
    total_steps = expect_number(total_steps, "total_steps", 1.0)
    s = [float(v) for v in steps]
    if not s or s[0] > total_steps:
        raise TutorialInputError(f"total_steps must lie within the curve's steps (from {s[:1]}), got {total_steps}.")
    n = sum(1 for v in s if v <= total_steps)
    step = steps_to_reach(s[:n], list(losses)[:n], target)
    return step / total_steps


def transformer_flops(n_params: float, n_tokens: float, training: bool = True) -> float:
    """The usual estimate: 6 N D FLOPs to train on D tokens, 2 N D for a forward pass (Kaplan et al. 2020).

    Chapter 06: open problems as experiments (compute equivalents).
    """
    expect_number(n_params, "n_params", 0.0)
    expect_number(n_tokens, "n_tokens", 0.0)
    return (6.0 if training else 2.0) * n_params * n_tokens


__all__ = [
    "PUBLISHED_CONFIGS",
    "compute_equivalent",
    "log_log_slope",
    "median_seconds",
    "random_transformer",
    "steps_to_reach",
    "transformer_flops",
    "unit_counts",
]

"""Attribution graph on toy-lm with its shipped transcoders: the batched build (one batch of cotangent rows,
one per target, carried down the frozen model by hand: `_frozen_vjp` in tutorial_lib/attribution_graph/graph.py)
against the naive reference (one autograd backward per target node), at prompt lengths up to toy-lm's n_ctx (32).
Prints, per length, the number of nodes, both times (best of 3), the speed ratio and the largest edge difference
(the edges must be identical up to float32 rounding; tests/test_attribution_graph_graph.py checks it at 6 and 32
tokens), then the smallest ratio (goal: at least 10x at every length).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/attribution_graph_vs_naive.py

Measured 2026-12-05, 1 thread on the shared 2-core machine (load 2-5, so the ratios move by +-30%): at 6 / 10 / 15 /
24 / 32 tokens (115 / 191 / 286 / 457 / 609 nodes) 26-35x / 48-66x / 44-76x / 36-78x / 38-61x, max |diff| 7e-7 on
edges up to 4.7. The batched build it replaced (autograd, one forward with a row per target and one backward per
layer of targets) gave 14.7x / 14.4x / 12.0x / 8.5x / 8.2x at load 0.2 (bit-identical edges): it was compute-bound
from 24 tokens on, its batch of target rows going through the whole frozen model.
"""

from __future__ import annotations

import time

import torch

from tutorial_lib import organisms
from tutorial_lib.attribution_graph import attribution_graph
from tutorial_lib.tasks.bracket_text import brackets
from tutorial_lib.transcoders.pretrained import load_transcoders

CLOSE = 6
GOAL = 10.0


def _best_time(fn, repeats: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(lengths: tuple[int, ...] = (6, 10, 15, 24, 32), repeats: int = 3) -> float:
    torch.manual_seed(0)
    model = organisms.load("toy-lm")
    tcs, _card = load_transcoders()
    print(f"{'tokens':>6} {'nodes':>6} {'latents':>7} {'batched s':>10} {'naive s':>8} {'ratio':>6} {'max |diff|':>10}")
    ratios = []
    for n_tokens in lengths:
        tokens = brackets(1, 32, seed=0).tokens[:, :n_tokens]
        t_fast, fast = _best_time(lambda t=tokens: attribution_graph(model, tcs, t, CLOSE), repeats)
        t_naive, naive = _best_time(lambda t=tokens: attribution_graph(model, tcs, t, CLOSE, naive=True), repeats)
        diff = (naive.adjacency - fast.adjacency).abs().max().item()  # type: ignore[union-attr]
        ratios.append(t_naive / t_fast)
        print(f"{n_tokens:>6} {fast.adjacency.shape[0]:>6} {fast.n_latents:>7} {t_fast:>10.3f} {t_naive:>8.3f} "  # type: ignore[union-attr]
              f"{ratios[-1]:>5.1f}x {diff:>10.2e}")  # fmt: skip
    print(f"smallest ratio: {min(ratios):.1f}x (goal: at least {GOAL:.0f}x at every length, identical edge weights)")
    return min(ratios)


if __name__ == "__main__":
    main()

"""Attribution graph on toy-lm: all targets' backward passes batched into one, against the naive
reference (one backward per target node). Prints both times, the speed ratio and the largest edge
difference.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/attribution_graph_vs_naive.py
"""

from __future__ import annotations

import time

import torch

from tutorial_lib import organisms
from tutorial_lib import transcoders as T
from tutorial_lib.attribution_graph import attribution_graph
from tutorial_lib.tasks.bracket_text import brackets
from tutorial_lib.tasks.corpus_text import PAD_ID, corpus_tokens

CLOSE = 6


def main(n_tokens: int = 15, repeats: int = 3) -> float:
    torch.manual_seed(0)
    model = organisms.load("toy-lm")
    train = corpus_tokens(128, 32, seed=0)
    tcs = [T.train_transcoder(*T.mlp_io(model, train, i, train != PAD_ID), steps=600)[0] for i in range(2)]
    tokens = brackets(1, 16, seed=0).tokens[:, :n_tokens]
    times = {}
    graphs = {}
    for naive in (False, True):
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            graphs[naive] = attribution_graph(model, tcs, tokens, CLOSE, naive=naive)
            best = min(best, time.perf_counter() - start)
        times[naive] = best
    diff = (graphs[True].adjacency - graphs[False].adjacency).abs().max().item()
    ratio = times[True] / times[False]
    print(f"prompt of {n_tokens} tokens, {graphs[False].adjacency.shape[0]} nodes ({graphs[False].n_latents} latents)")
    print(f"batched: {times[False]:.3f} s   naive (one backward per node): {times[True]:.3f} s   ratio {ratio:.1f}x")
    print(f"largest edge difference: {diff:.2e}")
    return ratio


if __name__ == "__main__":
    main()

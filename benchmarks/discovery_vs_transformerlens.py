"""tutorial_lib.discovery vs TransformerLens 4.3 and vs the plain loops, side by side, in one run:

1. EAP (edge attribution patching) vs TransformerLens' `attribution_patch(EdgeAttributionConfig("edge"))` on a
   GPT-2-architecture model of GPT-2 small's size with random weights (booted as `gpt2` is, offline), on the
   same IOI prompt pairs; the scores must agree to 1e-5 (TransformerLens scores one pair at a time).
2. ACDC vs the one-forward-per-edge loop (tests/discovery_support.acdc_one_by_one) on ioi-3l: same decisions.
3. A full ACDC threshold sweep on ioi-3l.

Times are the best of `--repeats` (user + system CPU would be fairer on a loaded machine; wall time shown).
Exits with status 1 if any result disagrees.

    python benchmarks/discovery_vs_transformerlens.py             # GPT-2 small size, 2 prompt pairs
    python benchmarks/discovery_vs_transformerlens.py --quick     # a 2-layer GPT-2 shape, for the smoke test
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

os.environ.setdefault("TUTORIAL_PROGRESS", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch
import transformer_lens.tools.analysis as tla
from discovery_support import acdc_one_by_one, gpt2_bridge, tl_index  # pyright: ignore[reportMissingImports]

from tutorial_lib import discovery, organisms, tasks

T = TypeVar("T")


def _best(fn: Callable[[], T], repeats: int) -> tuple[float, T]:
    t0 = time.perf_counter()
    out = fn()
    best = time.perf_counter() - t0
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def _metric(lg):
    return lg[:, -1, 5].mean() - lg[:, -1, 7].mean()  # the same for every pair: TransformerLens scores pairs singly


def eap_vs_transformerlens(quick: bool, pairs: int, repeats: int) -> bool:
    size = dict(n_layer=2, n_head=4, n_embd=32) if quick else dict(n_layer=12, n_head=12, n_embd=768)
    model = gpt2_bridge(**size)
    b = tasks.ioi(pairs, seed=0)
    clean, corrupted = b.tokens, b.corrupt_tokens
    g = discovery.build_graph(model)
    config = tla.EdgeAttributionConfig(granularity="edge")
    t_tl, result = _best(lambda: tla.attribution_patch(model, clean, corrupted, _metric, config), 1)
    t_us, ours = _best(lambda: discovery.eap_scores(model, clean, corrupted, _metric, per_position=True), repeats)
    theirs = torch.zeros_like(ours, dtype=torch.float64)
    for (writer, reader), value in result.edge_scores.items():
        theirs[writer.position, tl_index(g, writer, False), tl_index(g, reader, True)] = value
    diff = float((ours.double() - theirs).abs().max())
    print(f"EAP, {size}, {pairs} pairs x {clean.shape[1]} positions, {len(result.edge_scores)} edges:")
    print(f"  TransformerLens {t_tl:8.2f} s   ours {t_us:8.2f} s   ratio {t_tl / t_us:6.1f}x   max |diff| {diff:.1e}")
    return diff < 1e-5


def acdc_vs_plain(quick: bool, batch: int, repeats: int) -> bool:
    model = organisms.load("ioi-3l")
    b = tasks.ioi(batch, seed=0)
    clean, corrupted = b.tokens, b.corrupt_tokens
    threshold = 0.01
    t_plain, (kept, _, n_plain) = _best(lambda: acdc_one_by_one(model, clean, corrupted, threshold), 1)
    t_us, found = _best(lambda: discovery.acdc(model, clean, corrupted, threshold), repeats)
    same = bool(torch.equal(found.kept, kept))
    print(
        f"ACDC on ioi-3l, {batch} prompts, threshold {threshold}: {found.n_edges} of {discovery.build_graph(model).n_edges} edges kept"
    )
    print(f"  one forward per edge {t_plain:6.2f} s ({n_plain} forwards)   ours {t_us:6.2f} s   "
          f"ratio {t_plain / t_us:6.1f}x   same circuit: {same}")  # fmt: skip
    thresholds = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1] if not quick else [0.01, 0.1]
    t_sweep, results = _best(lambda: discovery.acdc_sweep(model, clean, corrupted, thresholds), repeats)
    sizes = ", ".join(f"{t}: {r.n_edges}" for t, r in zip(thresholds, results))
    print(f"  full sweep over {len(thresholds)} thresholds: {t_sweep:.2f} s (edges kept: {sizes})")
    return same


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true", help="a tiny model and few prompts (the smoke test)")
    p.add_argument("--pairs", type=int, default=2, help="prompt pairs for EAP")
    p.add_argument("--batch", type=int, default=16, help="prompts for ACDC")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    ok = eap_vs_transformerlens(a.quick, a.pairs, a.repeats)
    ok = acdc_vs_plain(a.quick, 4 if a.quick else a.batch, 1 if a.quick else a.repeats) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

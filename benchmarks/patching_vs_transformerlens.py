"""tutorial_lib.patching vs transformer_lens.patching: same model, same inputs, one run, per grid.

Each grid is timed end to end on both sides (TransformerLens: the clean run_with_cache plus its
get_act_patch_* call; ours: the whole activation_patch call, which caches both runs itself),
alternating the two `--repeats` times and keeping each side's best time. The results must agree to
1e-5 or the script exits with status 1.

    python benchmarks/patching_vs_transformerlens.py            # toy-lm sized model, IOI prompts
    python benchmarks/patching_vs_transformerlens.py --model ioi-3l
    python benchmarks/patching_vs_transformerlens.py --model gpt2-shape   # GPT-2 small's architecture and size,
                                                  # random weights, loaded as `gpt2` is (boot_transformers)
    python benchmarks/patching_vs_transformerlens.py --model smollm2-135m --batch 2 --repeats 1 --grids head_out_all_pos
    python benchmarks/patching_vs_transformerlens.py --quick    # tiny grids, for the smoke test
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time

os.environ.setdefault("TUTORIAL_PROGRESS", "0")

import torch
import transformer_lens.patching as tlp

from tutorial_lib import patching

TL_GRIDS = {grid: getattr(tlp, name) for grid, name in patching.TRANSFORMERLENS.items()}


def _gpt2_shape():
    """GPT-2 small's architecture and size with random weights, booted the way organisms.load("gpt2") boots
    GPT-2 (boot_transformers + compatibility mode), with the organism tokenizer: no download."""
    from transformer_lens.model_bridge import TransformerBridge
    from transformers import GPT2Config, GPT2LMHeadModel

    from tutorial_lib import organisms, tasks
    from tutorial_lib.tokenizer import load_tokenizer

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(vocab_size=len(tasks.VOCAB), n_positions=64)).eval()
    model = TransformerBridge.boot_transformers("gpt2", hf_model=hf, tokenizer=load_tokenizer(organisms.DATA_DIR / "toy-lm"),
                                                device="cpu")  # fmt: skip
    model.enable_compatibility_mode()
    return model


def _model_and_data(quick: bool, batch: int, name: str = "toy-lm"):
    """The shipped organism `name` (or GPT-2 small's shape) with IOI prompts; else a random model of toy-lm's shape."""
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge import TransformerBridge

    source = "random native model"
    model = None
    if not quick:
        try:
            from tutorial_lib import organisms

            if name == "gpt2-shape":
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                model, source = _gpt2_shape(), "GPT-2 small architecture (random weights, boot_transformers)"
            else:
                try:
                    model, source = organisms.load(name), f"organism {name} (trained)"
                except Exception:  # noqa: BLE001 - not shipped yet: same architecture, untrained
                    model, source = organisms.build(name), f"{name} architecture (untrained)"
        except Exception:  # noqa: BLE001
            model = None
    if model is None:
        n_layers, d_vocab = (1, 50) if quick else (3, 300)
        cfg = TransformerBridgeConfig(n_layers=n_layers, d_model=64, n_heads=4, d_head=16, d_mlp=256, d_vocab=d_vocab,
                                      n_ctx=32, attn_only=False, normalization_type="LN", act_fn="gelu", seed=0,
                                      device="cpu")  # fmt: skip
        model = TransformerBridge.boot_native(cfg)  # pyright: ignore[reportAttributeAccessIssue] - attached at import
    model.eval()
    gen = torch.Generator().manual_seed(0)
    n_pos = 4 if quick else 16
    tokens = None
    if not source.startswith("random"):
        with contextlib.suppress(Exception):
            from tutorial_lib import tasks

            b = tasks.ioi(batch=batch, seed=0)
            tokens = (model.to_tokens(b.prompts), model.to_tokens(b.corrupt_prompts),
                      torch.tensor([model.to_single_token(a) for a in b.answers]),
                      torch.tensor([model.to_single_token(a) for a in b.wrong_answers]))  # fmt: skip
            source += f", IOI prompts (template {b.template})"
    if tokens is None:
        d_vocab = model.cfg.d_vocab
        clean = torch.randint(d_vocab, (batch, n_pos), generator=gen)
        corrupted = clean.clone()
        corrupted[:, n_pos // 3] = torch.randint(d_vocab, (batch,), generator=gen)  # one differing token, IOI-like
        tokens = (clean, corrupted, torch.randint(d_vocab, (batch,), generator=gen),
                  torch.randint(d_vocab, (batch,), generator=gen))  # fmt: skip
    return model, source, tokens


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny model and grids (smoke test)")
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument(
        "--threads", type=int, default=1, help="torch threads (1 gives steadier ratios on a shared machine)"
    )
    ap.add_argument("--grids", nargs="*", default=None)
    ap.add_argument("--model", default="toy-lm", help="toy-lm, ioi-3l, gpt2-shape or smollm2-135m (offline, real)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch = args.batch or (2 if args.quick else 8)
    repeats = args.repeats or (1 if args.quick else 3)
    model, source, (clean, corrupted, right, wrong) = _model_and_data(args.quick, batch, args.model)

    def metric(logits):
        return patching.logit_diff(logits, right, wrong)

    grids = args.grids or [g for g in TL_GRIDS if not (model.cfg.attn_only and g == "mlp_out")]
    if args.quick:
        grids = ["resid_pre", "head_out_by_pos"]
    print(f"model: {source}, {model.cfg.n_layers} layers, {model.cfg.n_heads} heads; tokens {tuple(clean.shape)}; "
          f"torch threads {torch.get_num_threads()}; best of {repeats}")  # fmt: skip
    print(f"{'grid':<22}{'cells':>7}{'TL (s)':>10}{'ours (s)':>10}{'speed-up':>10}{'max |diff|':>12}")
    ok = True
    patching.activation_patch(model, clean, corrupted, metric, "resid_pre")  # warm-up (one-time model check)
    for grid in grids:
        best_tl = best_ours = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):  # TL's tqdm bar
                _, clean_cache = model.run_with_cache(clean)
                ref = TL_GRIDS[grid](model, corrupted, clean_cache, metric)
            best_tl = min(best_tl, time.perf_counter() - t)
            t = time.perf_counter()
            got = patching.activation_patch(model, clean, corrupted, metric, grid)
            best_ours = min(best_ours, time.perf_counter() - t)
        diff = (ref.to(got.device) - got).abs().max().item()
        ok &= got.shape == ref.shape and diff <= 1e-5
        print(f"{grid:<22}{ref.numel():>7}{best_tl:>10.3f}{best_ours:>10.4f}{best_tl / best_ours:>9.1f}x{diff:>12.1e}")
    print("results identical (<= 1e-5): " + ("yes" if ok else "NO"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Checks for chapter 05, induction heads: the repeated-sequence input, the attention-pattern
detectors (one head, then every head from a cache), the training monitor, K-composition, ablating
heads (zero and mean), finding the heads copying needs (open), and the circuit's coverage."""

from __future__ import annotations

import functools

import torch

from .. import attention, hooks, tasks
from .core import Mismatch, call_student, compare, exercise, random_model, student_heads


def _random_model(seed: int = 0):
    """A tiny random attention-only model (2 layers x 3 heads) with room for repeated sequences."""
    return random_model(seed, d_model=24, n_heads=3, d_vocab=19, n_ctx=24, attn_only=True)


@functools.lru_cache(maxsize=1)
def _organism():
    """The shipped induction-2l (small, offline): coverage needs a model with a real in-context loss drop."""
    from .. import organisms

    return organisms.load("induction-2l")


def _pattern(seed: int, batch: int = 3, heads: int = 4, n: int = 11) -> torch.Tensor:
    """Random causal attention patterns [batch, head, q, k]: rows sum to 1, nothing above the diagonal."""
    g = torch.Generator().manual_seed(seed)
    scores = 2 * torch.randn(batch, heads, n, n, generator=g)
    scores = scores.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)


def _offset_pattern(batch: int, heads: int, n: int, back: int) -> torch.Tensor:
    """Hand-made pattern: every query attends fully to q - back (to BOS when q - back < 0)."""
    q = torch.arange(n)
    target = (q - back).clamp(min=0)
    pattern = torch.zeros(batch, heads, n, n)
    pattern[:, :, q, target] = 1.0
    return pattern


def _scalar(x, what: str) -> float:
    if isinstance(x, torch.Tensor) and x.numel() == 1:
        return float(x)
    if isinstance(x, (int, float)):
        return float(x)
    raise Mismatch(
        f"{what}: expected a number (a float), got {type(x).__name__}"
        f"{' of shape ' + str(tuple(x.shape)) if isinstance(x, torch.Tensor) else ''}."
    )


# --------------------------------------------------------------------------- 05.1


@exercise("05.1", "The repeated-sequence input [BOS, x, x]", reference=tasks.repeated_tokens)
def check_repeated_tokens(fn):
    for batch, half_len, d_vocab, bos in [(4, 6, 11, 0), (3, 9, 7, 2), (5, 1, 5, 4)]:
        got = call_student(fn, batch, half_len, d_vocab, bos=bos, seed=1)
        what = f"repeated_tokens({batch}, {half_len}, {d_vocab}, bos={bos})"
        if not isinstance(got, torch.Tensor):
            raise Mismatch(f"{what}: expected an int tensor [batch, 1 + 2 * half_len], got {type(got).__name__}.")
        if tuple(got.shape) != (batch, 1 + 2 * half_len):
            raise Mismatch(
                f"{what}: expected shape {(batch, 1 + 2 * half_len)}, got {tuple(got.shape)}. "
                "The row is BOS, then x (half_len tokens), then x again."
            )
        if got.dtype.is_floating_point or got.dtype == torch.bool:
            raise Mismatch(f"{what}: tokens must be integers (torch.long), got {got.dtype}. Use torch.randint.")
        if not (got[:, 0] == bos).all():
            raise Mismatch(f"{what}: position 0 must be the BOS token {bos} in every row.")
        x, again = got[:, 1 : 1 + half_len], got[:, 1 + half_len :]
        if not torch.equal(x, again):
            raise Mismatch(
                f"{what}: the second half must repeat the first exactly (tokens[:, 1+L:] == tokens[:, 1:1+L]). "
                "Draw x once and concatenate it twice; do not draw it again."
            )
        if (x < 0).any() or (x >= d_vocab).any():
            raise Mismatch(f"{what}: tokens must lie in [0, d_vocab) = [0, {d_vocab}).")
        if (x == bos).any():
            raise Mismatch(f"{what}: x must never contain the BOS token {bos}: draw from the d_vocab - 1 other tokens.")
    big = [call_student(fn, 8, 12, 50, bos=0, seed=s) for s in (0, 1, 0)]
    if not all(isinstance(b, torch.Tensor) and b.shape == (8, 25) for b in big):
        raise Mismatch("repeated_tokens(8, 12, 50): expected a tensor of shape (8, 25).")
    if not torch.equal(big[0], big[2]):
        raise Mismatch(
            "the same seed must give the same tokens: use torch.Generator().manual_seed(seed) "
            "and pass generator= to torch.randint."
        )
    if torch.equal(big[0], big[1]):
        raise Mismatch("different seeds gave the same tokens: seed the generator with `seed`.")
    if big[0][:, 1:].unique().numel() < 20:
        raise Mismatch("the tokens look far from uniform over the vocabulary: draw them with torch.randint.")
    if torch.equal(big[0][0], big[0][1]):
        raise Mismatch("every row is the same: draw a different x for each row of the batch.")


# --------------------------------------------------------------------------- 05.2


@exercise("05.2", "The previous-token detector", reference=attention.previous_token_score)
def check_previous_token_score(fn):
    hint = (
        "average pattern[b, h, q, q - 1] over the batch and over the queries q >= 1 only "
        "(BOS at q = 0 has no previous token): pattern.diagonal(offset=-1, dim1=-2, dim2=-1)."
    )
    for back in (1, 2):
        pattern = _offset_pattern(2, 3, 9, back)
        got = call_student(fn, pattern)
        compare(
            got,
            attention.previous_token_score(pattern),
            f"the score of heads that always attend {back} back (should be {1.0 if back == 1 else 0.0})",
            hint=hint,
        )
    for seed in range(3):
        pattern = _pattern(seed)
        compare(
            call_student(fn, pattern),
            attention.previous_token_score(pattern),
            "the previous-token score per head",
            hint=hint,
        )


# --------------------------------------------------------------------------- 05.3


@exercise("05.3", "The induction score", reference=attention.induction_score)
def check_induction_score(fn):
    hint = (
        "on [BOS, x, x] with period L, average pattern[b, h, q, q - L + 1] (the token *after* the earlier "
        "occurrence, not the occurrence itself at q - L) over the batch and the second-half queries q >= L + 1."
    )
    for period in (3, 5):
        n = 1 + 2 * period
        perfect = _offset_pattern(2, 2, n, period - 1)
        compare(
            call_student(fn, perfect, period),
            attention.induction_score(perfect, period),
            f"the score of a perfect induction head (period {period}): 1 for every head",
            hint=hint,
        )
        dup = _offset_pattern(2, 2, n, period)
        compare(
            call_student(fn, dup, period),
            attention.induction_score(dup, period),
            f"the score of a duplicate-token head (attends to q - {period}): 0",
            hint=hint,
        )
    for seed, period in [(0, 4), (1, 5), (2, 3)]:
        pattern = _pattern(seed, n=1 + 2 * period)
        compare(
            call_student(fn, pattern, period),
            attention.induction_score(pattern, period),
            f"the induction score per head (period {period})",
            hint=hint,
        )


# --------------------------------------------------------------------------- 05.4


@exercise("05.4", "Every head's scores from one cache", reference=attention.head_scores, function_name="detect_heads")
def check_detect_heads(fn):
    model = _random_model(2)
    for seed, half in [(0, 5), (1, 8)]:
        tokens = tasks.repeated_tokens(3, half, model.cfg.d_vocab, seed=seed)
        got = call_student(fn, model, tokens)
        what = f"detect_heads(model, [BOS, x, x] with |x| = {half})"
        if not isinstance(got, dict) or not {"previous", "induction", "duplicate"} <= set(got):
            raise Mismatch(f"{what}: expected a dict with 'previous', 'induction', 'duplicate', got {type(got).__name__}"
                           f"{' with keys ' + str(sorted(got)) if isinstance(got, dict) else ''}.")  # fmt: skip
        want = attention.head_scores(model, tokens)
        hints = {
            "previous": "the diagonal with offset -1 of each layer's pattern, averaged over the batch and the queries.",
            "induction": f"the diagonal with offset -(L - 1) = {-(half - 1)}, without its first two entries "
            "(queries L - 1 and L are not in the second copy's predictable part).",
            "duplicate": f"the diagonal with offset -L = {-half}, without its first entry (query L attends to BOS).",
        }
        for kind in ("previous", "induction", "duplicate"):
            compare(got[kind], want[kind], f"{what}[{kind!r}] [layer, head]", atol=1e-5,
                    hint=f"{hints[kind]} The period L is (tokens.shape[1] - 1) // 2; stack the layers in order.")  # fmt: skip


# --------------------------------------------------------------------------- 05.5


def _segments(seed: int) -> tasks.RepeatedSegments:
    return tasks.repeated_segments(batch=24, seq_len=22, d_vocab=19, period=(3, 7), offset=(0, 4), seed=seed)


@exercise("05.5", "The live training monitor", reference=attention.probe_measures)
def check_probe_measures(fn):
    model = _random_model(3)
    hints = {
        "loss_first": "the mean of token_losses(logits, tokens) where probe.first is True.",
        "loss_repeated": "the mean of the per-position losses where probe.repeated is True.",
        "loss_near": "the other positions (neither mask, not position 0, not the last) whose next token last occurred "
        "0 <= seen_distance < probe.period[:, None] back.",
        "loss_far": "the other positions whose next token last occurred at least one period back "
        "(seen_distance >= probe.period[:, None]).",
        "loss_unseen": "the other positions whose next token never occurred before (seen_distance == -1); "
        "leave out position 0 and the last position, which has no next token (its loss is 0).",
        "icl": "attention.icl_score(per-position losses [batch, pos]).",
        "previous": "every head's previous-token score [layer, head], from the cached patterns.",
        "induction": "every head's induction score [layer, head] on segment data: pass probe.period and "
        "probe.repeated to attention.attention_scores.",
    }
    for seed in (0, 1):
        probe = _segments(seed)
        got = call_student(fn, model, probe)
        what = "probe_measures(model, probe)"
        if not isinstance(got, dict) or not set(hints) <= set(got):
            missing = sorted(set(hints) - set(got)) if isinstance(got, dict) else sorted(hints)
            raise Mismatch(f"{what}: expected a dict with the keys {sorted(hints)}; missing {missing}.")
        want = attention.probe_measures(model, probe)
        for key, hint in hints.items():
            value = got[key] if key in ("previous", "induction") else _scalar(got[key], f"{what}[{key!r}]")
            compare(value, want[key], f"{what}[{key!r}]", atol=1e-4, hint=hint)


# --------------------------------------------------------------------------- 05.6


@exercise("05.6", "K-composition scores", reference=attention.k_composition_score, function_name="k_composition")
def check_k_composition(fn):
    hint = (
        "the key side reads what OV_a wrote: score = ||OV_a @ QK_b^T||_F / (||OV_a||_F ||QK_b||_F) for every pair "
        "(broadcast ov_a[:, None] against qk_b[None]); with QK_b instead of its transpose you get Q-composition."
    )
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        ov_a = torch.randn(2, 6, 3, generator=g) @ torch.randn(2, 3, 6, generator=g)
        qk_b = torch.randn(3, 6, 3, generator=g) @ torch.randn(3, 3, 6, generator=g)
        compare(
            call_student(fn, ov_a, qk_b),
            attention.k_composition_score(ov_a, qk_b),
            "the K-composition scores [heads_a, heads_b]",
            hint=hint,
        )
    model = _random_model(0)
    ov, qk = attention.ov_circuit(model, 0).AB, attention.qk_circuit(model, 1).AB
    compare(
        call_student(fn, ov, qk),
        attention.composition_scores(model, "K"),
        "the K-composition of a random model's layer 0 into layer 1",
        hint=hint,
    )


# --------------------------------------------------------------------------- 05.5


def _data(seed: int, d_vocab: int = 19) -> tasks.RepeatedSegments:
    return tasks.repeated_segments(batch=6, seq_len=20, d_vocab=d_vocab, period=(3, 7), offset=(0, 4), seed=seed)


def _losses_dict(got, what: str) -> dict:
    if not isinstance(got, dict) or not {"first", "repeated"} <= set(got):
        raise Mismatch(f"{what}: expected a dict {{'first': float, 'repeated': float}}, got {type(got).__name__}.")
    return {k: _scalar(got[k], f"{what}[{k!r}]") for k in ("first", "repeated")}


@exercise("05.7", "Ablating heads, zero and mean", reference=attention.ablated_loss)
def check_ablated_loss(fn):
    model = _random_model(1)
    cases = [(0, [], "zero"), (1, [(0, 1)], "zero"), (2, [(1, 0), (1, 2)], "zero"), (3, [(0, 0), (1, 1)], "zero"),
             (1, [(0, 1)], "mean"), (2, [(1, 0), (1, 2)], "mean"), (3, [(0, 0), (1, 1)], "mean")]  # fmt: skip
    for seed, heads, kind in cases:
        data = _data(seed)
        what = f"ablated_loss(model, data, {heads}, kind={kind!r})"
        got = _losses_dict(call_student(fn, model, data, heads, kind=kind), what)
        want = attention.ablated_loss(model, data, heads, kind=kind)
        other = attention.ablated_loss(model, data, heads, kind="zero" if kind == "mean" else "mean")
        for key, mask in (("first", "data.first"), ("repeated", "data.repeated")):
            if heads and abs(got[key] - other[key]) < 1e-4 < abs(want[key] - other[key]):
                raise Mismatch(
                    f"{what}[{key!r}]: you returned the {'zero' if kind == 'mean' else 'mean'} ablation's loss. "
                    + ("kind='mean' replaces hook_z by its mean over the batch (dim 0) at each position, from a clean run."
                       if kind == "mean" else "kind='zero' sets hook_z of the listed heads to 0.")
                )  # fmt: skip
            compare(
                got[key],
                want[key],
                f"{what}[{key!r}]",
                atol=1e-4,
                hint=f"ablate hook_z[:, :, head] of every listed head (all in one forward pass, the hooks returning "
                f"the edited z; 'mean': the clean run's mean over the batch at each position), take the "
                f"cross-entropy of logits[:, q] against tokens[:, q + 1] and average it over the positions q where "
                f"{mask} is True.",
            )


# --------------------------------------------------------------------------- 05.8


@exercise("05.8", "Find the heads copying needs (open)", reference=attention.find_copy_heads)
def check_find_copy_heads(fn):
    model = _organism()
    for seed in (1234, 5):
        data = _organism_data(seed)
        got = call_student(fn, model, data)
        what = f"find_copy_heads(model, data of seed {seed})"
        heads = student_heads(got, model, what)
        clean = attention.ablated_loss(model, data, [])
        r = attention.ablated_loss(model, data, heads, kind="mean")
        rise, moved = r["repeated"] - clean["repeated"], abs(r["first"] - clean["first"])
        if rise <= 1.0:
            raise Mismatch(
                f"{what}: mean-ablating {heads} raises the repeated-half loss by {rise:.2f} nats, not more than 1. "
                "Measure each candidate with kind='mean' against the clean loss and keep searching (pairs too)."
            )
        if moved >= 0.3:
            raise Mismatch(
                f"{what}: mean-ablating {heads} moves the first-half loss by {moved:.2f} nats (at most 0.3)."
            )


def _organism_data(seed: int) -> tasks.RepeatedSegments:
    from .. import organisms

    return organisms.induction_batch(100, _organism().cfg.d_vocab, seed)


# --------------------------------------------------------------------------- 05.9


def _coverage_variant(model, data, circuit) -> float:
    """The equally valid variant of the reference that takes each layer's mean inside the ablated forward
    pass (the reference takes the means from the clean run; in layer 0 both agree)."""
    keep = {tuple(h) for h in circuit}
    with torch.no_grad():
        hooks_ = []
        for layer in range(model.cfg.n_layers):
            others = [h for h in range(model.cfg.n_heads) if (layer, h) not in keep]
            if others:
                hooks_.append((f"blocks.{layer}.attn.hook_z", hooks.head_ablation_hook(others, "mean")))
        loss = attention.token_losses(model.run_with_hooks(data.tokens, fwd_hooks=hooks_), data.tokens)
        clean = attention.ablated_loss(model, data, [])
    drop = clean["first"] - clean["repeated"]
    return (loss[data.first].mean().item() - loss[data.repeated].mean().item()) / drop


@exercise("05.9", "The circuit's coverage", reference=attention.circuit_coverage)
def check_circuit_coverage(fn):
    model = _organism()
    data = tasks.repeated_segments(
        batch=16, seq_len=40, d_vocab=model.cfg.d_vocab, period=(8, 16), offset=(0, 6), length=(6, 10), seed=7
    )
    for circuit in ([(0, 1), (1, 1)], [(1, 0), (1, 1)]):
        what = f"circuit_coverage(model, data, {circuit})"
        got = _scalar(call_student(fn, model, data, circuit), what)
        want = [attention.circuit_coverage(model, data, circuit)]
        if abs(got - want[0]) >= 2e-3:
            want.append(_coverage_variant(model, data, circuit))
        if not any(abs(got - w) < 2e-3 for w in want):
            hint = (
                "mean-ablate every head *not* in the circuit (replace its hook_z by its mean over the batch at each "
                "position), then divide the drop loss[first] - loss[repeated] of that run by the clean model's drop."
            )
            if abs(got - 1.0) < 1e-6:
                hint = "you returned 1: did you ablate the heads outside the circuit (and return the edited z)? " + hint
            elif any(abs(got - (1 - w)) < 2e-3 for w in want):
                hint = "you returned 1 - coverage: the coverage is drop(circuit alone) / drop(clean). " + hint
            raise Mismatch(f"{what}: expected about {want[0]:.4f}, got {got:.4f}. {hint}")

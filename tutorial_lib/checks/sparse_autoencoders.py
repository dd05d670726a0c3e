"""Checks for chapter 02, sparse autoencoders: the forward pass, TopK, the loss with its penalty,
explained variance, one training step, correlating latents with a known label, the whole training loop,
matching learned rows to true features, loss recovered by splicing, and (open) a sparse SAE of toy-lm."""

from __future__ import annotations

import copy
import functools

import torch
from torch import Tensor

from .. import sae as S
from ..sae import (
    latent_label_correlation,
    match_features,
    recovered_vs_mean,
    sae_forward,
    sae_loss,
    topk_activation,
    train_sparse_sae,
    train_topk,
    training_step,
)
from .core import Mismatch, call_student, compare, exercise
from .guard import Mutable

# The references live in the kernel modules (tutorial_lib.sae.architectures, .training, .metrics),
# with the exercise id in their docstrings.

# ---- helpers


def _pair(got, what: str) -> tuple[Tensor, Tensor]:
    if not isinstance(got, (tuple, list)) or len(got) != 2 or not all(isinstance(t, Tensor) for t in got):
        raise Mismatch(f"{what}: expected a tuple of two tensors (z, x_hat), got {type(got).__name__}.")
    return got[0], got[1]


def _close(a, b) -> bool:
    return isinstance(a, Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-4, rtol=1e-4)


def _weights(seed: int, d_in: int = 6, d_sae: int = 10):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(5, d_in, generator=g) + 2.0  # a non-zero mean, so that the mean matters
    return (
        x,
        torch.randn(d_in, d_sae, generator=g) / d_in**0.5,
        0.3 * torch.randn(d_sae, generator=g),
        torch.randn(d_sae, d_in, generator=g),
        torch.randn(d_in, generator=g),
    )


# ---- checks


@exercise("02.1", "The SAE's encoder and decoder", reference=sae_forward)
def check_sae_forward(fn):
    for seed in range(3):
        x, W_enc, b_enc, W_dec, b_dec = _weights(seed)
        z, x_hat = _pair(call_student(fn, x, W_enc, b_enc, W_dec, b_dec), "sae_forward")
        want_z, want_x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
        if _close(z, (x - b_dec) @ W_enc + b_enc) or _close(z, ((x - b_dec) @ W_enc + b_enc).relu()):
            raise Mismatch(
                "your codes subtract b_dec from x before encoding. Here (as in SAELens with "
                "apply_b_dec_to_input=False) the encoder is relu(x @ W_enc + b_enc); b_enc absorbs any shift."
            )
        if _close(z, x @ W_enc + b_enc):
            raise Mismatch("your codes are negative in places: apply the ReLU to x @ W_enc + b_enc.")
        compare(
            z,
            want_z,
            "the codes z [batch, d_sae]",
            hint="z = relu(x @ W_enc + b_enc) with W_enc of shape [d_in, d_sae] (no transpose).",
        )
        if _close(x_hat, z @ W_dec):
            raise Mismatch("the reconstruction misses the decoder bias: x_hat = z @ W_dec + b_dec.")
        compare(
            x_hat,
            want_x_hat,
            "the reconstruction x_hat [batch, d_in]",
            hint="x_hat = z @ W_dec + b_dec with W_dec of shape [d_sae, d_in].",
        )


@exercise("02.2", "The TopK activation", reference=topk_activation)
def check_topk_activation(fn):
    for seed, k in [(0, 1), (1, 3), (2, 5)]:
        g = torch.Generator().manual_seed(seed)
        pre = torch.randn(7, 9, generator=g)
        pre[0] = -pre[0].abs() - 0.1  # a row with no positive pre-activation: TopK then ReLU gives zeros
        got = call_student(fn, pre.clone(), k)
        want = topk_activation(pre, k)
        if isinstance(got, Tensor) and got.shape == want.shape:
            col = pre.topk(k, dim=0).indices
            if _close(got, torch.zeros_like(pre).scatter(0, col, pre.gather(0, col).relu())):
                raise Mismatch(
                    "you took the top k over the batch (dim 0): take it over the latents of each row, dim=-1."
                )
            rowk = pre.topk(k, dim=-1)
            if _close(got, torch.zeros_like(pre).scatter(-1, rowk.indices, rowk.values)):
                raise Mismatch(
                    "a row whose k largest pre-activations are negative keeps them: apply a ReLU to "
                    "the kept values (TopK, then ReLU, as in Gao et al. 2024)."
                )
            if _close(got, pre.relu()):
                raise Mismatch("you kept every positive pre-activation: keep only the k largest per row.")
        compare(
            got,
            want,
            f"the TopK codes with k={k}",
            hint="scatter the k largest values of each row (pre.topk(k, dim=-1)) into zeros, after a ReLU.",
        )


@exercise("02.3", "The loss with its sparsity penalty", reference=sae_loss)
def check_sae_loss(fn):
    for seed, coeff in [(0, 0.5), (1, 2.0), (2, 0.1)]:
        x, W_enc, b_enc, W_dec, b_dec = _weights(seed)
        W_dec = W_dec * torch.linspace(0.2, 3.0, W_dec.shape[0])[:, None]  # unequal decoder norms
        z, x_hat = sae_forward(x, W_enc, b_enc, W_dec, b_dec)
        got = call_student(fn, x, x_hat, z, W_dec, coeff)
        want = sae_loss(x, x_hat, z, W_dec, coeff)
        mse = (x_hat - x).pow(2).sum(-1).mean()
        if isinstance(got, Tensor) and got.numel() == 1:
            got_f = float(got)
            if abs(got_f - float(mse + coeff * z.abs().sum(-1).mean())) < 1e-4 * max(1.0, abs(got_f)):
                raise Mismatch(
                    "your L1 term ignores the decoder norms: weight each |z_i| by ||W_dec[i]|| "
                    "(otherwise the SAE shrinks z and grows W_dec to dodge the penalty)."
                )
            if abs(
                got_f - float((x_hat - x).pow(2).mean() + coeff * (z * W_dec.norm(dim=1)).sum(-1).mean())
            ) < 1e-4 * max(1.0, abs(got_f)):
                raise Mismatch(
                    "your squared error is averaged over d_in too: sum it over d_in, then average over the batch."
                )
            if abs(got_f - float(mse)) < 1e-4 * max(1.0, abs(got_f)):
                raise Mismatch("your loss has no sparsity penalty: add l1_coeff * mean_b sum_i z_i ||W_dec[i]||.")
        if not isinstance(got, Tensor) or got.numel() != 1:
            raise Mismatch(
                f"expected a scalar tensor (so that .backward() works), got "
                f"{type(got).__name__ if not isinstance(got, Tensor) else tuple(got.shape)}."
            )
        compare(
            got.reshape(()),
            want,
            f"the loss with l1_coeff={coeff}",
            hint="loss = mean over rows of sum_d (x_hat - x)^2 + l1_coeff * mean over rows of sum_i z_i ||W_dec[i]||.",
        )


@exercise("02.4", "Explained variance", reference=S.explained_variance)
def check_explained_variance(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(50, 6, generator=g) * 0.5 + 3.0 * torch.randn(6, generator=g)  # large mean
        x_hat = x + 0.3 * torch.randn(50, 6, generator=g)
        got = call_student(fn, x, x_hat)
        want = S.explained_variance(x, x_hat)
        try:
            got_f = float(got)
        except (TypeError, ValueError, RuntimeError):
            raise Mismatch(f"expected a number, got {type(got).__name__}.") from None
        about_zero = 1 - float((x - x_hat).pow(2).sum() / x.pow(2).sum())
        if abs(got_f - about_zero) < 1e-4:
            raise Mismatch(
                "you divided by the variance about zero (sum of x^2): subtract the mean of x over rows first. "
                "This was SAELens's own bug until PR #665, and it inflates the score when x has a large mean."
            )
        per_dim = float((1 - (x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)).mean())
        if abs(got_f - per_dim) < 1e-4:
            raise Mismatch(
                "you averaged a per-dimension ratio: divide the total squared error by the total variance "
                "(sums over rows and dimensions), then take 1 minus it."
            )
        compare(
            got_f,
            want,
            "the explained variance",
            hint="1 - sum ||x - x_hat||^2 / sum ||x - mean(x)||^2, the mean taken over rows (dim 0).",
        )


@exercise("02.5", "One training step", reference=training_step)
def check_training_step(fn):
    for seed in range(2):
        g = torch.Generator().manual_seed(seed)
        base = S.TopKSAE(6, 12, k=3, seed=seed, sparse=False)
        x = torch.randn(16, 6, generator=g) + 1.0
        ref, mine = copy.deepcopy(base), copy.deepcopy(base)
        ref.train()
        mine.train()
        opt_ref, opt_mine = torch.optim.Adam(ref.parameters(), lr=1e-2), torch.optim.Adam(mine.parameters(), lr=1e-2)
        want_losses = [training_step(ref, x, opt_ref) for _ in range(3)]
        got_losses = [call_student(fn, Mutable(mine), x, Mutable(opt_mine)) for _ in range(3)]
        if all(torch.equal(getattr(mine, n), getattr(base, n)) for n in ("W_enc", "W_dec", "b_enc", "b_dec")):
            raise Mismatch("the parameters did not change: call loss.backward() and optimizer.step().")
        norms = mine.W_dec.detach().norm(dim=1)
        if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
            raise Mismatch("the decoder rows no longer have unit norm: call sae.normalize_decoder() after the step.")
        if not torch.allclose(mine.W_dec.detach(), ref.W_dec.detach(), atol=1e-4):
            raise Mismatch(
                "the decoder differs from the reference: before optimizer.step(), remove the part of "
                "the gradient parallel to each decoder row (sae.remove_parallel_grad()), and call "
                "optimizer.zero_grad() every step."
            )
        for name in ("W_enc", "b_enc", "b_dec"):
            compare(
                getattr(mine, name).detach(),
                getattr(ref, name).detach(),
                f"{name} after three steps",
                atol=1e-4,
                rtol=1e-3,
                hint="zero the gradients before backward, one optimizer.step() per call.",
            )
        for got, want in zip(got_losses, want_losses):
            compare(
                got,
                want,
                "the returned loss",
                atol=1e-4,
                rtol=1e-4,
                hint="return the loss computed before the step (a Python float: loss.item()).",
            )


@exercise("02.9", "Correlate latents with a label", reference=latent_label_correlation)
def check_latent_label_correlation(fn):
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        labels = torch.randint(0, 4, (40,), generator=g)
        z = torch.randn(40, 7, generator=g).relu() + 0.5 * labels[:, None] * torch.randn(7, generator=g)
        z[:, 2] = 0.0  # a dead latent: its correlation is defined as 0
        got = call_student(fn, z.clone(), labels.clone())
        want = latent_label_correlation(z, labels)
        if isinstance(got, Tensor) and got.shape == want.shape and not torch.isfinite(got).all():
            raise Mismatch("a latent that never fires has zero variance: return 0 for it instead of NaN.")
        if isinstance(got, Tensor) and got.shape == want.shape:
            raw = (z * labels[:, None].float()).mean(0)
            if _close(got, raw):
                raise Mismatch(
                    "you returned a raw product: centre both z and labels, then divide by their standard deviations."
                )
        compare(
            got,
            want,
            "the correlation of each latent with the label [d_sae]",
            hint="Pearson r per column: sum((z - mean z)(y - mean y)) / sqrt(sum (z - mean z)^2 * sum (y - mean y)^2).",
        )


@exercise("02.6", "The TopK training loop", reference=train_topk)
def check_train_topk(fn):
    g = torch.Generator().manual_seed(0)
    data = torch.randn(400, 6, generator=g) @ torch.randn(6, 6, generator=g) + 2.0
    base = S.TopKSAE(6, 16, k=2, seed=3, sparse=False)
    ref, mine = copy.deepcopy(base), copy.deepcopy(base)
    want = train_topk(ref, data, 30, batch_size=32, lr=1e-2, dead_window=5, seed=1)
    got = call_student(fn, Mutable(mine), data, 30, batch_size=32, lr=1e-2, dead_window=5, seed=1)
    if not isinstance(got, (list, tuple)) or len(got) != 30:
        raise Mismatch(f"return a list with one loss per step (30 here), got {type(got).__name__} of length "
                       f"{len(got) if hasattr(got, '__len__') else '?'}.")  # fmt: skip
    if torch.allclose(mine.b_dec.detach(), base.b_dec) and not torch.allclose(ref.b_dec, base.b_dec):
        raise Mismatch("b_dec never moved: did you train at all (optimizer.step()) and start b_dec at the data mean?")
    if abs(float(got[0]) - want[0]) > 1e-3 * max(1.0, abs(want[0])):
        raise Mismatch(
            f"the first loss is {float(got[0]):.4g}, expected {want[0]:.4g}: before the first step, set b_dec to "
            "the mean of the data and normalise the decoder rows; draw each batch with "
            "torch.randint(0, n, (batch_size,), generator=gen) from a generator seeded with `seed`; report the "
            "squared error (out.mse), not the total loss."
        )
    norms = mine.W_dec.detach().norm(dim=1)
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        raise Mismatch("the decoder rows no longer have unit norm: call sae.normalize_decoder() after every step.")
    losses_close = all(abs(float(a) - b) <= 1e-3 * max(1.0, abs(b)) for a, b in zip(got, want))
    if not torch.allclose(mine.W_dec.detach(), ref.W_dec, atol=1e-3):
        if losses_close:
            raise Mismatch("the losses match but the decoder does not: remove the gradient parallel to each decoder "
                           "row (sae.remove_parallel_grad()) between backward() and step().")  # fmt: skip
        raise Mismatch(
            "the run drifts from the reference after a few steps. Common causes: no AuxK (pass "
            "dead=since_fired >= dead_window and aux_coeff to sae.loss), a firing counter that is not reset "
            "for latents that fired (since_fired[out.fired] = 0 after since_fired += 1), the gradient parallel "
            "to each decoder row not removed (sae.remove_parallel_grad() between backward() and step()), or "
            "optimizer.zero_grad() missing."
        )
    compare([float(v) for v in got], want, "the per-step losses", atol=1e-3, rtol=1e-3)


@exercise("02.7", "Matching learned rows to true features", reference=match_features)
def check_match_features(fn):
    for seed, (n_true, n_learned) in enumerate([(5, 8), (6, 6), (7, 4)]):
        g = torch.Generator().manual_seed(seed)
        true = torch.randn(n_true, 5, generator=g)
        learned = torch.cat(
            [true[: min(n_true, n_learned)] * 2.5, torch.randn(max(0, n_learned - n_true), 5, generator=g)]
        )
        learned = learned + 0.4 * torch.randn(n_learned, 5, generator=g)
        got = call_student(fn, learned, true)
        want = match_features(learned, true)
        if not isinstance(got, dict) or set(got) != {"mmcs", "mcc"}:
            raise Mismatch(f"return a dict with keys 'mmcs' and 'mcc', got {type(got).__name__}"
                           f"{' with keys ' + str(sorted(got)) if isinstance(got, dict) else ''}.")  # fmt: skip
        raw = true @ learned.T
        if abs(float(got["mmcs"]) - float(raw.max(1).values.mean())) < 1e-4:
            raise Mismatch("you compared raw dot products: normalise both sets of rows to unit length first.")
        compare(float(got["mmcs"]), want["mmcs"], "mmcs (mean over true features of the best cosine)",
                hint="for each true feature (row), the largest cosine with any learned row; then the mean.")  # fmt: skip
        if abs(float(got["mcc"]) - want["mmcs"]) < 1e-4 and abs(want["mcc"] - want["mmcs"]) > 1e-3:
            raise Mismatch("your mcc equals mmcs: a learned row may serve only one true feature. Take the largest "
                           "remaining cosine, then remove its row and its column, and repeat.")  # fmt: skip
        compare(float(got["mcc"]), want["mcc"], "mcc (greedy one-to-one matching)",
                hint="repeat min(n_true, n_learned) times: take the largest remaining cosine, record it, set its "
                     "row and column to -inf; the mean of the recorded cosines.")  # fmt: skip


@functools.lru_cache(maxsize=1)
def _toy_lm_case():
    """toy-lm, a TopK SAE trained briefly on its residual stream, and held-out text (for 02.8 and 02.10)."""
    from .. import organisms, tasks

    model = organisms.load("toy-lm").eval()
    hook = "blocks.1.hook_resid_pre"

    def acts_of(seed: int, n: int):
        tokens = tasks.corpus_tokens(n, model.cfg.n_ctx, seed=seed)
        with torch.no_grad():
            _, cache = model.run_with_cache(tokens, names_filter=[hook])
        return tokens, cache[hook][tokens != tasks.PAD_ID]

    train_tokens, train_acts = acts_of(1, 1200)
    test_tokens, test_acts = acts_of(3, 300)
    sae = S.TopKSAE(64, 128, k=4, seed=0)
    S.train_sae(sae, train_acts, steps=40, batch_size=1024, lr=5e-3, seed=0)
    return model, hook, sae, train_acts, test_tokens[:40], test_acts


@exercise("02.8", "Loss recovered by splicing", reference=recovered_vs_mean)
def check_recovered_vs_mean(fn):
    model, hook, sae, _, tokens, _ = _toy_lm_case()
    got = call_student(fn, model, sae, tokens, hook)
    want = recovered_vs_mean(model, sae, tokens, hook)
    try:
        got_f = float(got)
    except (TypeError, ValueError, RuntimeError):
        raise Mismatch(f"expected a number, got {type(got).__name__}.") from None
    ref = S.loss_recovered(model, sae, tokens, hook)
    if abs(got_f - ref["recovered_vs_zero"]) < 1e-3 and abs(want - ref["recovered_vs_zero"]) > 1e-3:
        raise Mismatch("you compared with zero ablation: replace the activation by its mean over batch and "
                       "positions (a [d_model] vector), not by zeros.")  # fmt: skip
    if abs(got_f - (1 - want)) < 1e-3:
        raise Mismatch("your fraction is upside down: (L_ablated - L_sae) / (L_ablated - L_clean) is 1 when the "
                       "SAE loses nothing.")  # fmt: skip
    compare(got_f, want, "the loss recovered against mean ablation", atol=2e-3, rtol=1e-3,
            hint="three losses with return_type='loss': clean, with the hook returning sae(act) (reshaped to "
                 "[batch*pos, d] and back), with the hook returning the mean activation.")  # fmt: skip


OPEN_EV, OPEN_L0 = 0.95, 4.0


@exercise("02.10", "A sparse SAE of toy-lm (open)", reference=train_sparse_sae, function_name="train_my_sae")
def check_train_my_sae(fn):
    """A measured property, not equality: the SAE the student's function trains on toy-lm's activations reaches
    EV >= OPEN_EV with L0 <= OPEN_L0 on held-out text."""
    _, _, _, train_acts, _, test_acts = _toy_lm_case()
    sae = call_student(fn, train_acts)
    if not isinstance(sae, S.SAE):
        raise Mismatch(f"return the trained SAE (a tutorial_lib.sae.SAE), got {type(sae).__name__}.")
    if sae.d_in != train_acts.shape[1]:
        raise Mismatch(f"the SAE's d_in is {sae.d_in}; toy-lm's residual stream has {train_acts.shape[1]} dimensions.")
    with torch.no_grad():
        ev = S.evaluate(sae, test_acts)
    if ev.l0 > OPEN_L0 + 1e-6 or ev.explained_variance < OPEN_EV:
        raise Mismatch(
            f"on held-out text your SAE has L0 {ev.l0:.1f} and EV {ev.explained_variance:.3f}; the target is "
            f"L0 <= {OPEN_L0:g} with EV >= {OPEN_EV}. A TopK SAE fixes L0 exactly; then train long enough "
            "that the loss flattens."
        )

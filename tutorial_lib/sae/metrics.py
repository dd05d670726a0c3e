"""Metrics: explained variance, L0, `evaluate` over a data set, loss recovered in a model, recovery
of known features, overlap between two SAEs, and the correlation of latents with a label."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor

from ..hooks import per_token_loss
from ..validation import (
    TutorialInputError,
    expect_dtype,
    expect_finite,
    expect_int_at_least,
    expect_model,
    expect_ndim,
    expect_range,
    expect_shape,
)
from .base import SAE

__all__ = [
    "SAEEval",
    "auroc",
    "evaluate",
    "explained_variance",
    "feature_recovery",
    "l0_norm",
    "latent_label_correlation",
    "loss_recovered",
    "match_features",
    "recovered_vs_mean",
    "shared_latent_fraction",
    "steer_with_latent",
]


def explained_variance(x: Float[Tensor, "n d"], x_hat: Float[Tensor, "n d"]) -> float:
    """1 - E||x - x_hat||^2 / E||x - E[x]||^2: 0 for predicting the mean, 1 for a perfect fit.

    Chapter 02: sparse autoencoders. Exercise 02.4 (the reference).
    """
    x = expect_ndim(x, 2, "x", "[n, d]")
    expect_shape(x_hat, tuple(x.shape), "x_hat", "[n, d]")
    expect_finite(x, "x")
    expect_finite(x_hat, "x_hat")
    x64, xh64 = x.detach().double(), x_hat.detach().double()
    err = (x64 - xh64).pow(2).sum()
    var = (x64 - x64.mean(0)).pow(2).sum()
    return float(1.0 - err / var.clamp_min(1e-30))


def l0_norm(z: Float[Tensor, "n d_sae"]) -> float:
    """Mean number of non-zero latents per row.

    Chapter 02: sparse autoencoders.
    """
    z = expect_ndim(z, 2, "z", "[n, d_sae]")
    expect_finite(z, "z")
    return float((z != 0).sum(1).double().mean())


@dataclass(frozen=True)
class SAEEval:
    """Reconstruction and sparsity of an SAE on a data set.

    Chapter 02: sparse autoencoders.
    """

    mse: float  # mean over rows of ||x - x_hat||^2
    explained_variance: float
    l0: float
    dead_fraction: float  # latents that never fire on the data
    dense_fraction: float  # latents that fire on more than `dense_threshold` of rows


@torch.no_grad()
def evaluate(
    sae: SAE, data: Float[Tensor, "n d_in"], *, batch_size: int = 8192, dense_threshold: float = 0.1
) -> SAEEval:
    """MSE, explained variance, L0, dead and dense latent fractions of `sae` over `data` (eval mode).

    Chapter 02: sparse autoencoders.
    """
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    data = expect_finite(sae.check_input(data), "data")
    was_training = sae.training
    sae.eval()
    n = data.shape[0]
    err = torch.zeros((), dtype=torch.float64, device=data.device)
    counts = torch.zeros(sae.d_sae, dtype=torch.float64, device=data.device)
    l0 = torch.zeros((), dtype=torch.float64, device=data.device)
    mean = data.double().mean(0)
    var = torch.zeros((), dtype=torch.float64, device=data.device)
    for s in range(0, n, batch_size):
        x = data[s : s + batch_size].to(sae.W_enc.dtype)
        z = sae.encode(x)
        x_hat = sae.decode(z)
        err += (x - x_hat).double().pow(2).sum()
        var += (x.double() - mean).pow(2).sum()
        active = z != 0
        counts += active.sum(0).double()
        l0 += active.sum().double()
    sae.train(was_training)
    freq = counts / n
    return SAEEval(
        mse=float(err / n),
        explained_variance=float(1 - err / var.clamp_min(1e-30)),
        l0=float(l0 / n),
        dead_fraction=float((counts == 0).double().mean()),
        dense_fraction=float((freq > dense_threshold).double().mean()),
    )


def _spliced_losses(
    model, sae: SAE, tokens: Tensor, hook_name: str, loss_mask: Tensor | None, from_pos: int = 0
) -> tuple[float, float, float, float]:
    """Next-token losses: clean, with the SAE spliced in, zero-ablated, mean-ablated (in that order); each
    intervention replaces positions from `from_pos` on (the earlier ones keep their clean activation).

    Chapter 02: sparse autoencoders.
    """
    stash: dict[str, Tensor] = {}

    # TransformerLens calls hooks as fn(act, hook=point): the name `hook` is its interface.
    def grab(act, hook):  # noqa: ARG001
        if act.shape[-1] != sae.d_in:
            raise TutorialInputError(
                f"the activation at {hook_name} has last dimension {act.shape[-1]}, but the SAE has d_in={sae.d_in}."
            )
        stash["mean"] = act[:, from_pos:].reshape(-1, act.shape[-1]).mean(0)
        return act

    def replaced(act: Tensor, new: Tensor) -> Tensor:
        return torch.cat([act[:, :from_pos], new[:, from_pos:]], dim=1) if from_pos else new

    def splice(act, hook):  # noqa: ARG001
        x_hat = sae(act.reshape(-1, act.shape[-1]).to(sae.W_enc.dtype)).reshape(act.shape).to(act.dtype)
        return replaced(act, x_hat)

    def zero(act, hook):  # noqa: ARG001
        return replaced(act, torch.zeros_like(act))

    def mean_ablate(act, hook):  # noqa: ARG001
        return replaced(act, stash["mean"].expand_as(act))

    def run(fn) -> float:
        if loss_mask is None:
            return float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, fn)]))
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])
        nll = per_token_loss(logits, tokens)
        m = loss_mask.to(device=nll.device, dtype=nll.dtype)
        return float((nll * m).sum() / m.sum().clamp_min(1))

    clean = run(grab)
    return clean, run(splice), run(zero), run(mean_ablate)


@torch.no_grad()
def loss_recovered(
    model,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    loss_mask: Tensor | None = None,
    from_pos: int = 0,
) -> dict[str, float]:
    """Next-token loss with the SAE's reconstruction spliced in at `hook_name`, against ablations.

    Chapter 02: sparse autoencoders.

    Returns the clean loss, the loss with the SAE, with the activation zero-ablated and mean-ablated
    (mean over batch and positions), and recovered = (L_ablated - L_sae) / (L_ablated - L_clean) for
    both ablations: 1 means the SAE loses nothing, 0 means it is as bad as the ablation.
    `loss_mask` [batch, pos-1] (bool) keeps only some predictions in the mean, e.g. tokens[:, 1:] != pad.
    `from_pos` > 0 leaves the first positions clean in every run and out of the mean, e.g. a real model's
    attention sinks, whose massive activations an SAE is not trained on.
    """
    tokens = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_dtype(tokens, "int", "tokens")
    if loss_mask is not None:
        expect_shape(loss_mask, (tokens.shape[0], tokens.shape[1] - 1), "loss_mask", "[batch, pos-1]")
    expect_range(expect_int_at_least(from_pos, "from_pos", 0), "from_pos", 0, tokens.shape[1] - 1)
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    expect_model(model)
    was_training = sae.training
    sae.eval()
    try:
        clean, with_sae, zero_loss, mean_loss = _spliced_losses(model, sae, tokens, hook_name, loss_mask, from_pos)
    except KeyError as err:  # TransformerLens: "Hook name '...' does not exist on this model."
        if str(hook_name) not in str(err):
            raise
        raise TutorialInputError(f"hook_name {hook_name!r} is not a hook point of this model ({err}).") from None
    finally:
        sae.train(was_training)

    def recovered(ablated: float) -> float:
        gap = ablated - clean
        return float("nan") if abs(gap) < 1e-12 else (ablated - with_sae) / gap

    return {
        "clean_loss": clean,
        "sae_loss": with_sae,
        "zero_ablation_loss": zero_loss,
        "mean_ablation_loss": mean_loss,
        "recovered_vs_zero": recovered(zero_loss),
        "recovered_vs_mean": recovered(mean_loss),
    }


def recovered_vs_mean(model, sae: SAE, tokens: Int[Tensor, "batch pos"], hook_name: str) -> float:
    """Loss recovered against mean ablation (mean over batch and positions), every prediction counted.

    Chapter 02: sparse autoencoders. Exercise 02.8 (the reference): `loss_recovered(...)["recovered_vs_mean"]`.
    """
    return loss_recovered(model, sae, tokens, hook_name)["recovered_vs_mean"]


def _rows(obj: SAE | Tensor, name: str) -> Tensor:
    """Decoder rows of an SAE, or a [n_latents, d] tensor as it is (detached).

    Chapter 02: sparse autoencoders.
    """
    if isinstance(obj, SAE):
        return obj.W_dec.detach()
    return expect_finite(expect_ndim(obj, 2, name, "[n_latents, d]"), name).detach()


def _cosines(a: Tensor, b: Tensor) -> Tensor:
    """Cosine similarity of every row of a with every row of b, in float32 on a's device.

    Chapter 02: sparse autoencoders.
    """
    a, b = a.float(), b.to(device=a.device, dtype=torch.float32)
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()


def _greedy_match(cos: Tensor) -> Tensor:
    """Matched cosine per row of `cos` [rows, cols] (rows <= cols), taking the largest remaining pair.

    Chapter 02: sparse autoencoders.
    """
    c = cos.clone()
    out = torch.empty(c.shape[0], dtype=c.dtype)
    for _ in range(c.shape[0]):
        r, col = divmod(int(c.argmax()), c.shape[1])
        out[r] = cos[r, col]
        c[r, :] = float("-inf")
        c[:, col] = float("-inf")
    return out


def _match(cos: Tensor) -> Tensor:
    """Matched cosine per row of `cos` [rows, cols] (rows <= cols): Hungarian via scipy, else greedy.

    Chapter 02: sparse autoencoders.
    """
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # greedy: repeatedly take the largest remaining pair
        return _greedy_match(cos)
    rows, cols = linear_sum_assignment(cos.cpu().double().numpy(), maximize=True)
    return cos.cpu()[torch.as_tensor(rows), torch.as_tensor(cols)]


def match_features(learned: Float[Tensor, "n_learned d"], true_features: Float[Tensor, "n_true d"]) -> dict[str, float]:
    """mmcs (mean best cosine of each true feature) and a greedy one-to-one matching's mean cosine (mcc).

    Chapter 02: sparse autoencoders. Exercise 02.7 (the reference): `feature_recovery` with the greedy
    matching instead of the Hungarian one (at most a few hundredths lower).
    """
    W = expect_finite(expect_ndim(learned, 2, "learned", "[n_learned, d]"), "learned")
    true = expect_finite(expect_ndim(true_features, 2, "true_features", "[n_true, d]"), "true_features")
    if W.shape[1] != true.shape[1]:
        raise TutorialInputError(f"learned rows have dimension {W.shape[1]} but true features {true.shape[1]}.")
    cos = _cosines(true, W.detach()).cpu()
    matched = _greedy_match(cos if cos.shape[0] <= cos.shape[1] else cos.t())
    return {"mmcs": float(cos.max(1).values.mean()), "mcc": float(matched.mean())}


def feature_recovery(learned: SAE | Tensor, true_features: Float[Tensor, "n_true d"]) -> dict[str, float]:
    """How well decoder rows recover known features, by cosine similarity.

    Chapter 02: sparse autoencoders.

    mmcs: mean over true features of the best cosine with any learned row.
    mcc: mean cosine of a one-to-one matching (Hungarian with scipy, greedy otherwise) between true
    features and learned rows; when there are fewer learned rows than true features, the mean runs
    over the learned rows.
    """
    W = _rows(learned, "learned")
    true = expect_finite(expect_ndim(true_features, 2, "true_features", "[n_true, d]"), "true_features")
    if W.shape[1] != true.shape[1]:
        raise TutorialInputError(f"learned rows have dimension {W.shape[1]} but true features {true.shape[1]}.")
    cos = _cosines(true, W).cpu()
    mmcs = float(cos.max(1).values.mean())
    matched = _match(cos if cos.shape[0] <= cos.shape[1] else cos.t())
    return {"mmcs": mmcs, "mcc": float(matched.mean())}


def shared_latent_fraction(a: SAE | Tensor, b: SAE | Tensor, threshold: float = 0.9) -> float:
    """Fraction of A's decoder rows whose best cosine with any of B's rows exceeds `threshold`.

    Chapter 02: sparse autoencoders.

    1 - this is the seed disagreement of Paulo and Belrose (2025) when A and B differ only by seed.
    """
    expect_range(threshold, "threshold", -1.0, 1.0)
    Wa, Wb = _rows(a, "a"), _rows(b, "b")
    if Wa.shape[1] != Wb.shape[1]:
        raise TutorialInputError(f"a's rows have dimension {Wa.shape[1]} but b's have {Wb.shape[1]}.")
    best = torch.cat([_cosines(Wa[s : s + 4096], Wb).max(1).values for s in range(0, Wa.shape[0], 4096)])
    return float((best > threshold).float().mean())


def latent_label_correlation(z: Float[Tensor, "n d_sae"], labels: Tensor) -> Float[Tensor, " d_sae"]:
    """Pearson correlation of each latent's activation with a label, over rows; 0 for a constant latent.

    Chapter 02: sparse autoencoders. Exercise 02.9 (the reference).
    """
    z = expect_finite(expect_ndim(z, 2, "z", "[n, d_sae]"), "z")
    expect_finite(expect_shape(labels, (z.shape[0],), "labels", "[n] (one per row of z)"), "labels")
    z, y = z.double(), labels.double()
    zc, yc = z - z.mean(0), y - y.mean()
    denom = (zc.pow(2).sum(0) * yc.pow(2).sum()).sqrt()
    r = (zc * yc[:, None]).sum(0) / denom.clamp_min(1e-30)
    return torch.where(denom > 1e-12, r, torch.zeros_like(r)).float()


@torch.no_grad()
def steer_with_latent(
    model,
    sae: SAE,
    tokens: Int[Tensor, "batch pos"],
    hook_name: str,
    latent: int,
    alpha: float,
    where: Tensor,
    token: int,
) -> float:
    """Mean probability of `token` at the positions `where` [batch, pos] after adding alpha * W_dec[latent]
    to the activation at `hook_name` at those positions.

    Chapter 02: sparse autoencoders. (Steering with the depth latent.)
    """
    tokens = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_shape(where, tuple(tokens.shape), "where", "[batch, pos]")
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    if not 0 <= int(latent) < sae.d_sae:
        raise TutorialInputError(f"latent must be in [0, {sae.d_sae}), got {latent}.")
    d_vocab = expect_model(model).cfg.d_vocab
    if not 0 <= int(token) < d_vocab:
        raise TutorialInputError(f"token must be a token id in [0, {d_vocab}), got {token}.")
    if hook_name not in model.hook_dict:
        raise TutorialInputError(f"hook_name {hook_name!r} is not a hook point of this model.")
    mask = where.to(sae.W_dec.device).bool()

    def steer(act, hook):  # noqa: ARG001 - TransformerLens passes the hook point as `hook`
        return act + alpha * mask[..., None].to(act.dtype) * sae.W_dec[int(latent)].to(act.dtype)

    logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, steer)])
    return float(logits.softmax(-1)[..., int(token)][mask].mean())


def auroc(scores: Float[Tensor, " n"], labels: Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half).

    Chapter 02: sparse autoencoders. (Is a latent a detector for a binary label?)
    """
    scores = expect_finite(expect_ndim(scores, 1, "scores", "[n]"), "scores")
    labels = expect_shape(labels, tuple(scores.shape), "labels", "[n]").bool().to(scores.device)
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise TutorialInputError("auroc needs at least one positive and one negative label.")
    # Mann-Whitney from ranks (tied scores share their average rank): O(n log n), no [pos, neg] matrix.
    sorted_scores, order = scores.double().sort(stable=True)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = counts.cumsum(0).double()
    ranks = torch.empty_like(sorted_scores)
    ranks[order] = ((ends - counts + 1 + ends) / 2)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))

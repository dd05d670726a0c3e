"""Sparse autoencoders: ReLU (L1), TopK, BatchTopK and JumpReLU; one training loop; metrics; SAELens I/O.

Every SAE here computes  pre = x @ W_enc + b_enc,  z = activation(pre),  x_hat = z @ W_dec + b_dec
with W_enc [d_in, d_sae] and W_dec [d_sae, d_in] (SAELens's layout and key names). The input is not
shifted by b_dec before encoding (SAELens's `apply_b_dec_to_input=False`); SAEs saved with the shift
are folded into b_enc on load.

The TopK SAE has a sparse path (`TopKSAE.sparse`) that never builds the dense [batch, d_sae] code:
the encoder matmul stays dense, but top-k selection, the encoder backward and the whole decoder run on
the k selected latents per row (gathers, `F.embedding_bag`, `torch.sparse.mm`). `use_sparse_topk`
says when it pays.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from jaxtyping import Float, Int
from torch import Tensor, nn

from .hooks import per_token_loss
from .progress import progress
from .validation import (
    TutorialInputError,
    expect_choice,
    expect_dtype,
    expect_ndim,
    expect_range,
    expect_shape,
)

__all__ = [
    "ARCHITECTURES",
    "SAE",
    "BatchTopKSAE",
    "JumpReLUSAE",
    "ReLUSAE",
    "SAEEval",
    "LossOutput",
    "TopKSAE",
    "TrainHistory",
    "default_dead_window",
    "evaluate",
    "explained_variance",
    "feature_recovery",
    "feature_frequencies",
    "l0_norm",
    "load_sae",
    "loss_recovered",
    "make_sae",
    "save_sae",
    "shared_latent_fraction",
    "synthetic_activations",
    "topk_decode_sparse",
    "topk_encode_sparse",
    "train_sae",
    "use_sparse_topk",
]

ARCHITECTURES = ("relu", "topk", "batchtopk", "jumprelu")


# ----------------------------------------------------------------------------------------------
# Sparse TopK kernels
# ----------------------------------------------------------------------------------------------


def use_sparse_topk(k: int, d_sae: int) -> bool:
    """The rule for the sparse TopK path: k/d_sae <= 1/16 and d_sae >= 256.

    Measured here (one training step with AuxK, batch 4096, fp32, 1 thread, CPU time): sparse/dense
    speed-up 1.0x at k/n = 1/8, 1.3x at 1/16 (d 128, n 512, k 32), 1.6-2.6x at 1/64-1/128 and 3.4x at
    d 512, n 16384, k 32; below 1/8 it loses (0.74x at 1/4), and at d_sae < 256 the two are even.
    """
    return k * 16 <= d_sae and d_sae >= 256


def _coo_by_latent(idx: Int[Tensor, "batch k"], vals: Float[Tensor, "batch k"], d_sae: int) -> Tensor:
    """The [d_sae, batch] sparse matrix with vals at (idx[b, j], b): S.T of the code, for S.T @ dense."""
    batch, k = idx.shape
    rows = torch.arange(batch, device=idx.device).repeat_interleave(k)
    return torch.sparse_coo_tensor(
        torch.stack([idx.reshape(-1), rows]), vals.reshape(-1), (d_sae, batch), check_invariants=False
    )


def _latent_grad(idx: Tensor, vals: Tensor, dense: Float[Tensor, "batch d"], d_sae: int) -> Float[Tensor, "d_sae d"]:
    """sum_b vals[b, j] * dense[b] accumulated into row idx[b, j]: the weight gradient of a gather.

    A sparse [d_sae, batch] @ dense [batch, d] product; on 2 CPU cores it beat index_add_ and
    embedding_bag's own backward by 3-10x in a side-by-side measurement.
    """
    return torch.sparse.mm(_coo_by_latent(idx, vals, d_sae), dense)


def _row_dots(
    W: Float[Tensor, "d_sae d"],
    idx: Int[Tensor, "batch k"],
    vals: Float[Tensor, "batch k"],
    g: Float[Tensor, "batch d"],
) -> Float[Tensor, "batch k"]:
    """out[b, j] = W[idx[b, j]] . g[b]: the gradient of embedding_bag's per-sample weights.

    Taken from embedding_bag's own backward, which was ~10x faster than gathering rows and a bmm.
    """
    with torch.enable_grad():
        v = vals.detach().requires_grad_()
        out = F.embedding_bag(idx, W.detach(), per_sample_weights=v, mode="sum")
        return torch.autograd.grad(out, v, g)[0]


class _GatherLinear(torch.autograd.Function):
    """vals[b, j] = (x @ W + bias)[b, idx[b, j]], given the precomputed pre-activations.

    Backward touches only the selected latents: dW[:, i] = sum over (b, j) with idx = i of g * x[b].
    """

    @staticmethod
    def forward(ctx, x, W, bias, pre, idx):
        ctx.save_for_backward(x, W, idx)
        return pre.gather(1, idx)

    @staticmethod
    def backward(ctx, g):
        x, W, idx = ctx.saved_tensors
        d_sae = W.shape[1]
        grad_x = grad_W = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = F.embedding_bag(idx, W.t().contiguous(), per_sample_weights=g, mode="sum")
        if ctx.needs_input_grad[1]:
            grad_W = _latent_grad(idx, g, x, d_sae).t()
        if ctx.needs_input_grad[2]:
            grad_b = g.new_zeros(d_sae).index_add_(0, idx.reshape(-1), g.reshape(-1))
        return grad_x, grad_W, grad_b, None, None


class _SparseDecode(torch.autograd.Function):
    """out[b] = sum_j vals[b, j] * W_dec[idx[b, j]], without the dense [batch, d_sae] code."""

    @staticmethod
    def forward(ctx, vals, idx, W_dec):
        ctx.save_for_backward(vals, idx, W_dec)
        return F.embedding_bag(idx, W_dec, per_sample_weights=vals, mode="sum")

    @staticmethod
    def backward(ctx, g):
        vals, idx, W_dec = ctx.saved_tensors
        grad_vals = _row_dots(W_dec, idx, vals, g) if ctx.needs_input_grad[0] else None
        grad_W = _latent_grad(idx, vals, g, W_dec.shape[0]) if ctx.needs_input_grad[2] else None
        return grad_vals, None, grad_W


def topk_encode_sparse(
    x: Float[Tensor, "batch d_in"], W_enc: Float[Tensor, "d_in d_sae"], b_enc: Float[Tensor, " d_sae"], k: int
) -> tuple[Float[Tensor, "batch k"], Int[Tensor, "batch k"], Float[Tensor, "batch d_sae"]]:
    """TopK codes as (values after ReLU, latent indices, detached pre-activations); sparse backward."""
    with torch.no_grad():
        pre = torch.addmm(b_enc, x, W_enc)
        idx = pre.topk(k, dim=1, sorted=False).indices
    vals = _GatherLinear.apply(x, W_enc, b_enc, pre, idx)
    return vals.relu(), idx, pre


def topk_decode_sparse(
    vals: Float[Tensor, "batch k"], idx: Int[Tensor, "batch k"], W_dec: Float[Tensor, "d_sae d_in"]
) -> Float[Tensor, "batch d_in"]:
    """sum_j vals[b, j] W_dec[idx[b, j]] (no bias) through gathers; gradients touch the k rows only."""
    return _SparseDecode.apply(vals, idx, W_dec)


# ----------------------------------------------------------------------------------------------
# Architectures
# ----------------------------------------------------------------------------------------------


@dataclass
class _Forward:
    """What one training forward pass hands to the loss."""

    x_hat: Tensor
    pre: Tensor  # pre-activations; detached on the sparse path
    fired: Tensor  # [d_sae] bool: latents active on this batch
    l0: Tensor  # scalar: mean active latents per row
    penalty: Tensor  # scalar sparsity penalty (0 for TopK-style SAEs)
    sparse_x: Tensor | None = None  # the input, when pre has no graph (for the AuxK gather)


@dataclass
class LossOutput:
    """Total loss and its parts for one batch (all scalars but `fired`)."""

    loss: Tensor
    mse: Tensor
    penalty: Tensor
    aux: Tensor
    l0: Tensor
    fired: Tensor


class SAE(nn.Module):
    """Base sparse autoencoder: parameters, encode/decode, the shared loss, decoder-norm handling.

    Subclasses set `architecture`, `unit_norm_decoder` and implement `activation` (dense codes) and,
    where they have one, `penalty` (the sparsity term of the loss).
    """

    architecture = "base"
    unit_norm_decoder = True
    uses_aux = False  # whether AuxK applies by default

    def __init__(self, d_in: int, d_sae: int, *, seed: int = 0, device=None, dtype=torch.float32):
        super().__init__()
        if not isinstance(d_in, int) or not isinstance(d_sae, int) or d_in < 1 or d_sae < 1:
            raise TutorialInputError(f"d_in and d_sae must be positive ints, got d_in={d_in!r}, d_sae={d_sae!r}.")
        self.d_in, self.d_sae = d_in, d_sae
        gen = torch.Generator().manual_seed(seed)
        W_dec = torch.randn(d_sae, d_in, generator=gen, dtype=torch.float32)
        W_dec = W_dec / W_dec.norm(dim=1, keepdim=True)
        if not self.unit_norm_decoder:
            W_dec = W_dec * 0.1  # Anthropic's April 2024 initialisation for L1-trained SAEs
        self.W_dec = nn.Parameter(W_dec.to(device=device, dtype=dtype))
        self.W_enc = nn.Parameter(W_dec.t().clone().to(device=device, dtype=dtype))  # tied init
        self.b_enc = nn.Parameter(torch.zeros(d_sae, device=device, dtype=dtype))
        self.b_dec = nn.Parameter(torch.zeros(d_in, device=device, dtype=dtype))
        self.hook_name: str | None = None

    # -- the forward pass -------------------------------------------------------------------
    def pre_acts(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        return torch.addmm(self.b_enc, x, self.W_enc)

    def activation(self, pre: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_sae"]:
        raise NotImplementedError

    def encode(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_sae"]:
        """Dense latent codes (inference behaviour)."""
        x = self._check_input(x)
        return self.activation(self.pre_acts(x))

    def decode(self, z: Float[Tensor, "batch d_sae"]) -> Float[Tensor, "batch d_in"]:
        return torch.addmm(self.b_dec, z, self.W_dec)

    def forward(self, x: Float[Tensor, "batch d_in"]) -> Float[Tensor, "batch d_in"]:
        """Reconstruction x_hat; leading dimensions beyond [batch, d_in] are flattened and restored."""
        shape = x.shape
        x_hat = self.decode(self.encode(x.reshape(-1, shape[-1]) if x.ndim != 2 else x))
        return x_hat.reshape(shape)

    def train_forward(self, x: Tensor, frac: float) -> _Forward:
        """Forward pass used by the loss; `frac` is the fraction of training done (for warm-ups)."""
        pre = self.pre_acts(x)
        z = self.activation(pre)
        active = z > 0
        return _Forward(self.decode(z), pre, active.any(0), active.sum(1).float().mean(), self.penalty(z, pre, frac))

    def penalty(self, z: Tensor, pre: Tensor, frac: float) -> Tensor:
        return z.new_zeros(())

    # -- the loss -----------------------------------------------------------------------------
    def loss(
        self,
        x: Float[Tensor, "batch d_in"],
        *,
        dead: Tensor | None = None,
        aux_coeff: float = 0.0,
        k_aux: int | None = None,
        frac: float = 1.0,
    ) -> LossOutput:
        """Squared error per row (summed over d_in, mean over batch) + sparsity penalty + AuxK.

        AuxK (Gao et al. 2024): the top `k_aux` dead latents reconstruct the residual x - x_hat;
        their normalised error, times aux_coeff * min(n_dead / k_aux, 1), joins the loss.
        """
        out = self.train_forward(x, frac)
        mse = (out.x_hat - x).pow(2).sum(-1).mean()
        aux = x.new_zeros(())
        if aux_coeff > 0 and dead is not None:
            n_dead = int(dead.sum())
            if n_dead > 0:
                aux = aux_coeff * self._aux_loss(x, out, dead, n_dead, k_aux or max(1, self.d_in // 2))
        return LossOutput(mse + out.penalty + aux, mse, out.penalty, aux, out.l0, out.fired)

    def _aux_loss(self, x: Tensor, out: _Forward, dead: Tensor, n_dead: int, k_aux: int) -> Tensor:
        scale = min(n_dead / k_aux, 1.0)
        k = min(k_aux, n_dead)
        residual = (x - out.x_hat).detach()
        with torch.no_grad():  # top k among the dead columns only
            dead_idx = dead.nonzero().squeeze(1)
            local = out.pre.detach().index_select(1, dead_idx).topk(k, dim=1, sorted=False).indices
            idx = dead_idx[local]
        if out.pre.requires_grad:
            vals = out.pre.gather(1, idx)
        else:
            vals = _GatherLinear.apply(out.sparse_x, self.W_enc, self.b_enc, out.pre, idx)
        e_hat = topk_decode_sparse(vals.relu(), idx, self.W_dec)
        denom = (residual - residual.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return scale * (e_hat - residual).pow(2).sum(-1).mean() / denom

    # -- decoder norms --------------------------------------------------------------------------
    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Scale decoder rows to unit norm (architectures with `unit_norm_decoder`)."""
        if self.unit_norm_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the part of the decoder gradient that would only change row norms."""
        if self.unit_norm_decoder and self.W_dec.grad is not None:
            g, W = self.W_dec.grad, self.W_dec
            g.sub_((g * W).sum(1, keepdim=True) * W)

    # -- helpers ----------------------------------------------------------------------------------
    def _check_input(self, x: object) -> Tensor:
        x = expect_ndim(x, 2, "x", "[batch, d_in]")
        expect_shape(x, (None, self.d_in), "x", "[batch, d_in]")
        expect_dtype(x, "float", "x")
        return x

    def extra_cfg(self) -> dict:
        """Architecture-specific entries of the SAELens cfg.json."""
        return {}

    def extra_repr(self) -> str:
        return f"d_in={self.d_in}, d_sae={self.d_sae}"


class ReLUSAE(SAE):
    """ReLU SAE with an L1 penalty weighted by decoder norms (Anthropic, April 2024 update).

    penalty = l1_coeff * ramp * mean_b sum_i z_i ||W_dec_i||, where ramp rises linearly from 0 to 1
    over the first `l1_warmup` fraction of training. Decoder norms stay free (the penalty sees them).
    """

    architecture = "relu"
    unit_norm_decoder = False

    def __init__(self, d_in: int, d_sae: int, *, l1_coeff: float = 5.0, l1_warmup: float = 0.05, **kwargs):
        super().__init__(d_in, d_sae, **kwargs)
        self.l1_coeff = float(expect_range(l1_coeff, "l1_coeff", 0.0))
        self.l1_warmup = float(expect_range(l1_warmup, "l1_warmup", 0.0, 1.0))

    def activation(self, pre: Tensor) -> Tensor:
        return pre.relu()

    def penalty(self, z: Tensor, pre: Tensor, frac: float) -> Tensor:
        ramp = 1.0 if self.l1_warmup == 0 else min(1.0, frac / self.l1_warmup)
        return self.l1_coeff * ramp * (z * self.W_dec.norm(dim=1)).sum(-1).mean()


class TopKSAE(SAE):
    """TopK SAE (Gao et al. 2024): keep the k largest pre-activations per row, then ReLU.

    `sparse=None` picks the sparse path by `use_sparse_topk`; True/False force it. Both paths give
    the same numbers (tests check values and gradients).
    """

    architecture = "topk"
    uses_aux = True

    def __init__(self, d_in: int, d_sae: int, *, k: int = 8, sparse: bool | None = None, **kwargs):
        super().__init__(d_in, d_sae, **kwargs)
        if not isinstance(k, int) or not 1 <= k <= d_sae:
            raise TutorialInputError(f"k must be an int in [1, d_sae={d_sae}], got {k!r}.")
        self.k = k
        self.sparse = sparse

    def activation(self, pre: Tensor) -> Tensor:
        vals, idx = pre.topk(self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter(-1, idx, vals.relu())

    def uses_sparse(self, batch: int) -> bool:
        return use_sparse_topk(self.k, self.d_sae) if self.sparse is None else bool(self.sparse)

    def train_forward(self, x: Tensor, frac: float) -> _Forward:
        if not self.uses_sparse(x.shape[0]):
            return super().train_forward(x, frac)
        vals, idx, pre = topk_encode_sparse(x, self.W_enc, self.b_enc, self.k)
        x_hat = topk_decode_sparse(vals, idx, self.W_dec) + self.b_dec
        with torch.no_grad():
            live = vals > 0
            fired = torch.zeros(self.d_sae, dtype=torch.bool, device=x.device)
            fired[idx[live]] = True
            l0 = live.sum(1).float().mean()
        return _Forward(x_hat, pre, fired, l0, x.new_zeros(()), sparse_x=x)

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x2 = self._check_input(x.reshape(-1, shape[-1]) if x.ndim != 2 else x)
        if self.uses_sparse(x2.shape[0]):
            vals, idx, _ = topk_encode_sparse(x2, self.W_enc, self.b_enc, self.k)
            return (topk_decode_sparse(vals, idx, self.W_dec) + self.b_dec).reshape(shape)
        return self.decode(self.activation(self.pre_acts(x2))).reshape(shape)

    def extra_cfg(self) -> dict:
        return {"k": self.k, "rescale_acts_by_decoder_norm": False}


class BatchTopKSAE(SAE):
    """BatchTopK SAE (Bussmann et al. 2024): keep the k * batch largest activations of the whole batch.

    Training tracks a threshold (an exponential average of the smallest kept activation); in eval
    mode the SAE is a JumpReLU with that threshold, which is how it is saved for SAELens.
    """

    architecture = "batchtopk"
    uses_aux = True

    def __init__(self, d_in: int, d_sae: int, *, k: int = 8, threshold_lr: float = 0.01, **kwargs):
        super().__init__(d_in, d_sae, **kwargs)
        if not isinstance(k, int) or not 1 <= k <= d_sae:
            raise TutorialInputError(f"k must be an int in [1, d_sae={d_sae}], got {k!r}.")
        self.k = k
        self.threshold_lr = threshold_lr
        self.register_buffer("threshold", torch.zeros((), device=self.W_enc.device, dtype=self.W_enc.dtype))

    def activation(self, pre: Tensor) -> Tensor:
        if not self.training:
            return pre * (pre > self.threshold)
        acts = pre.relu()
        flat = acts.reshape(-1)
        vals, idx = flat.topk(min(self.k * acts.shape[0], flat.numel()), sorted=False)
        z = torch.zeros_like(flat).scatter(0, idx, vals).reshape(acts.shape)
        with torch.no_grad():
            kept = vals[vals > 0]
            if kept.numel():
                self.threshold.lerp_(kept.min(), self.threshold_lr)
        return z

    def extra_cfg(self) -> dict:
        return {"k": self.k}


class _JumpReLUFn(torch.autograd.Function):
    """z = pre * H(pre - theta); d/dtheta via a rectangle-kernel straight-through estimator."""

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        window = ((pre - theta).abs() < eps / 2).to(g.dtype)
        grad_theta = -(theta / eps) * (window * g).sum(0)
        return g * (pre > theta), grad_theta, None


class _StepFn(torch.autograd.Function):
    """H(pre - theta) with the straight-through gradient to theta only (Rajamanoharan et al. 2024)."""

    @staticmethod
    def forward(ctx, pre, theta, bandwidth):
        ctx.save_for_backward(pre, theta)
        ctx.bandwidth = bandwidth
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        eps = ctx.bandwidth
        window = ((pre - theta).abs() < eps / 2).to(g.dtype)
        return None, -(1.0 / eps) * (window * g).sum(0), None


class JumpReLUSAE(SAE):
    """JumpReLU SAE: z = pre * [pre > threshold], a learned threshold per latent, L0 penalty.

    The step has no gradient; a straight-through estimator with a rectangle kernel of width
    `bandwidth` gives the threshold one (Rajamanoharan et al. 2024). The threshold is trained as
    log_threshold; `threshold` is what SAELens stores. The L0 coefficient warms up like ReLU's L1.
    """

    architecture = "jumprelu"

    def __init__(
        self,
        d_in: int,
        d_sae: int,
        *,
        l0_coeff: float = 1e-3,
        bandwidth: float = 0.05,
        init_threshold: float = 0.1,
        l0_warmup: float = 0.05,
        **kwargs,
    ):
        super().__init__(d_in, d_sae, **kwargs)
        self.l0_coeff = float(expect_range(l0_coeff, "l0_coeff", 0.0))
        self.bandwidth = float(expect_range(bandwidth, "bandwidth", 1e-8))
        self.l0_warmup = float(expect_range(l0_warmup, "l0_warmup", 0.0, 1.0))
        expect_range(init_threshold, "init_threshold", 1e-8)
        self.log_threshold = nn.Parameter(
            torch.full((d_sae,), math.log(init_threshold), device=self.W_enc.device, dtype=self.W_enc.dtype)
        )

    @property
    def threshold(self) -> Tensor:
        return self.log_threshold.exp()

    def activation(self, pre: Tensor) -> Tensor:
        return _JumpReLUFn.apply(pre, self.threshold, self.bandwidth)

    def penalty(self, z: Tensor, pre: Tensor, frac: float) -> Tensor:
        ramp = 1.0 if self.l0_warmup == 0 else min(1.0, frac / self.l0_warmup)
        return self.l0_coeff * ramp * _StepFn.apply(pre, self.threshold, self.bandwidth).sum(-1).mean()


_CLASSES = {"relu": ReLUSAE, "topk": TopKSAE, "batchtopk": BatchTopKSAE, "jumprelu": JumpReLUSAE}


def make_sae(architecture: str, d_in: int, d_sae: int, **kwargs) -> SAE:
    """Build an SAE by name: "relu", "topk", "batchtopk" or "jumprelu"; kwargs go to the class."""
    expect_choice(architecture, ARCHITECTURES, "architecture")
    return _CLASSES[architecture](d_in, d_sae, **kwargs)


# ----------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------


@dataclass
class TrainHistory:
    """What `train_sae` saw: per logged step, the loss parts, L0 and the dead fraction."""

    steps: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    mse: list[float] = field(default_factory=list)
    aux: list[float] = field(default_factory=list)
    l0: list[float] = field(default_factory=list)
    dead_fraction: list[float] = field(default_factory=list)
    n_steps: int = 0
    n_samples: int = 0
    seconds: float = 0.0
    dead_window: int = 0

    @property
    def samples_per_second(self) -> float:
        return self.n_samples / max(self.seconds, 1e-9)


def _lr_factor(step: int, total: int, warmup: int, decay: int) -> float:
    """Linear warm-up over `warmup` steps, flat, then linear decay to 0 over the last `decay` steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if decay and step >= total - decay:
        return max(0.0, (total - step) / decay)
    return 1.0


def _tensor_batches(data: Tensor, batch_size: int, steps: int, gen: torch.Generator) -> Iterator[Tensor]:
    n = data.shape[0]
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen).to(data.device)
        for s in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            if done >= steps:
                return
            yield data[perm[s : s + batch_size]]
            done += 1


def default_dead_window(total_steps: int) -> int:
    """Steps without firing after which a latent counts as dead: 1/20 of the run, in [5, 1000].

    A fixed 1000 steps (SAELens's default) never triggers on the short runs a notebook can afford.
    """
    return int(min(1000, max(5, total_steps // 20)))


def train_sae(
    sae: SAE,
    data: Tensor | Iterable[Tensor],
    *,
    steps: int | None = None,
    epochs: float | None = None,
    batch_size: int = 4096,
    lr: float = 1e-3,
    warmup_frac: float = 0.02,
    decay_frac: float = 0.2,
    dead_window: int | None = None,
    aux_coeff: float | None = None,
    k_aux: int | None = None,
    init_b_dec: bool = True,
    seed: int = 0,
    log_every: int = 50,
    desc: str = "training SAE",
) -> TrainHistory:
    """Train `sae` with Adam on an in-memory tensor [n, d_in] or an iterator of [batch, d_in] tensors.

    Length: `steps`, or `epochs` over a tensor (default 1 epoch), or the iterator's len(). The learning
    rate warms up over `warmup_frac` and decays linearly to 0 over the last `decay_frac` of steps.
    Dead latents (no firing for `dead_window` steps, default `default_dead_window(steps)`) feed the
    AuxK loss with weight `aux_coeff` (default 1/32 for TopK and BatchTopK, 0 otherwise).
    With `init_b_dec`, b_dec starts at the mean of the data (of the first batch for an iterator).
    """
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    expect_range(lr, "lr", 0.0)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TutorialInputError(f"batch_size must be a positive int, got {batch_size!r}.")
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    device = sae.W_enc.device

    first: Tensor | None = None
    if isinstance(data, Tensor):
        expect_shape(data, (None, sae.d_in), "data", "[n_samples, d_in]")
        expect_dtype(data, "float", "data")
        n = data.shape[0]
        per_epoch = max(1, n // batch_size)
        if steps is None:
            steps = max(1, round(per_epoch * (1.0 if epochs is None else epochs)))
        batches: Iterator[Tensor] = _tensor_batches(data, min(batch_size, n), steps, gen)
        mean = data.mean(0)
    else:
        if steps is None:
            if not hasattr(data, "__len__"):
                raise TutorialInputError("data is an iterator without len(): pass steps= to say how long to train.")
            steps = len(data)  # type: ignore[arg-type]
        batches = iter(data)
        try:
            first = next(batches)
        except StopIteration:
            raise TutorialInputError("data yielded no batch.") from None
        expect_shape(first, (None, sae.d_in), "a batch of data", "[batch, d_in]")
        mean = first.mean(0)
    if not isinstance(steps, int) or steps < 1:
        raise TutorialInputError(f"steps must be a positive int, got {steps!r}.")

    if init_b_dec:
        with torch.no_grad():
            sae.b_dec.copy_(mean.to(device=device, dtype=sae.b_dec.dtype))
    window = default_dead_window(steps) if dead_window is None else int(dead_window)
    if aux_coeff is None:
        aux_coeff = 1 / 32 if sae.uses_aux else 0.0
    warmup, decay = int(warmup_frac * steps), int(decay_frac * steps)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    since_fired = torch.zeros(sae.d_sae, dtype=torch.long, device=device)
    hist = TrainHistory(dead_window=window)
    sae.train()
    sae.normalize_decoder()

    def stream() -> Iterator[Tensor]:
        if first is not None:
            yield first
        yield from batches

    start = time.perf_counter()
    for step, x in progress(zip(range(steps), stream()), desc=desc, total=steps):
        x = x.to(device=device, dtype=sae.W_enc.dtype)
        for group in opt.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, warmup, decay)
        dead = since_fired >= window
        out = sae.loss(x, dead=dead, aux_coeff=aux_coeff, k_aux=k_aux, frac=step / steps)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        sae.remove_parallel_grad()
        opt.step()
        sae.normalize_decoder()
        since_fired += 1
        since_fired[out.fired] = 0
        hist.n_steps += 1
        hist.n_samples += x.shape[0]
        if step % log_every == 0 or step == steps - 1:
            hist.steps.append(step)
            hist.loss.append(out.loss.item())
            hist.mse.append(out.mse.item())
            hist.aux.append(out.aux.item())
            hist.l0.append(out.l0.item())
            hist.dead_fraction.append(dead.float().mean().item())
    hist.seconds = time.perf_counter() - start
    sae.eval()
    return hist


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


def explained_variance(x: Float[Tensor, "n d"], x_hat: Float[Tensor, "n d"]) -> float:
    """1 - E||x - x_hat||^2 / E||x - E[x]||^2: 0 for predicting the mean, 1 for a perfect fit."""
    x = expect_ndim(x, 2, "x", "[n, d]")
    expect_shape(x_hat, tuple(x.shape), "x_hat", "[n, d]")
    x64, xh64 = x.detach().double(), x_hat.detach().double()
    err = (x64 - xh64).pow(2).sum()
    var = (x64 - x64.mean(0)).pow(2).sum()
    return float(1.0 - err / var.clamp_min(1e-30))


def l0_norm(z: Float[Tensor, "n d_sae"]) -> float:
    """Mean number of non-zero latents per row."""
    z = expect_ndim(z, 2, "z", "[n, d_sae]")
    return float((z != 0).sum(1).double().mean())


@dataclass(frozen=True)
class SAEEval:
    """Reconstruction and sparsity of an SAE on a data set."""

    mse: float  # mean over rows of ||x - x_hat||^2
    explained_variance: float
    l0: float
    dead_fraction: float  # latents that never fire on the data
    dense_fraction: float  # latents that fire on more than `dense_threshold` of rows


@torch.no_grad()
def evaluate(
    sae: SAE, data: Float[Tensor, "n d_in"], *, batch_size: int = 8192, dense_threshold: float = 0.1
) -> SAEEval:
    """MSE, explained variance, L0, dead and dense latent fractions of `sae` over `data` (eval mode)."""
    data = sae._check_input(data)
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


@torch.no_grad()
def loss_recovered(
    model, sae: SAE, tokens: Int[Tensor, "batch pos"], hook_name: str, loss_mask: Tensor | None = None
) -> dict[str, float]:
    """Next-token loss with the SAE's reconstruction spliced in at `hook_name`, against ablations.

    Returns the clean loss, the loss with the SAE, with the activation zero-ablated and mean-ablated
    (mean over batch and positions), and recovered = (L_ablated - L_sae) / (L_ablated - L_clean) for
    both ablations: 1 means the SAE loses nothing, 0 means it is as bad as the ablation.
    `loss_mask` [batch, pos-1] (bool) keeps only some predictions in the mean, e.g. tokens[:, 1:] != pad.
    """
    tokens = expect_ndim(tokens, 2, "tokens", "[batch, pos]")
    expect_dtype(tokens, "int", "tokens")
    if loss_mask is not None:
        expect_shape(loss_mask, (tokens.shape[0], tokens.shape[1] - 1), "loss_mask", "[batch, pos-1]")
    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    was_training = sae.training
    sae.eval()
    stash: dict[str, Tensor] = {}

    def grab(act, hook):
        if act.shape[-1] != sae.d_in:
            raise TutorialInputError(
                f"the activation at {hook_name} has last dimension {act.shape[-1]}, but the SAE has d_in={sae.d_in}."
            )
        stash["mean"] = act.reshape(-1, act.shape[-1]).mean(0)
        return act

    def splice(act, hook):
        return sae(act.reshape(-1, act.shape[-1]).to(sae.W_enc.dtype)).reshape(act.shape).to(act.dtype)

    def zero(act, hook):
        return torch.zeros_like(act)

    def mean_ablate(act, hook):
        return stash["mean"].expand_as(act).clone()

    def run(fn) -> float:
        if loss_mask is None:
            return float(model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, fn)]))
        logits = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, fn)])
        nll = per_token_loss(logits, tokens)
        m = loss_mask.to(device=nll.device, dtype=nll.dtype)
        return float((nll * m).sum() / m.sum().clamp_min(1))

    clean = run(grab)
    with_sae, zero_loss, mean_loss = run(splice), run(zero), run(mean_ablate)
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


def _rows(obj: SAE | Tensor, name: str) -> Tensor:
    if isinstance(obj, SAE):
        return obj.W_dec.detach()
    return expect_ndim(obj, 2, name, "[n_latents, d]").detach()


def _cosines(a: Tensor, b: Tensor) -> Tensor:
    a, b = a.float(), b.to(device=a.device, dtype=torch.float32)
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).t()


def _match(cos: Tensor) -> Tensor:
    """Matched cosine per row of `cos` [rows, cols] (rows <= cols): Hungarian via scipy, else greedy."""
    try:
        from scipy.optimize import linear_sum_assignment
    except ImportError:  # greedy: repeatedly take the largest remaining pair
        c = cos.clone()
        out = torch.empty(c.shape[0], dtype=c.dtype)
        for _ in range(c.shape[0]):
            flat = int(c.argmax())
            r, col = divmod(flat, c.shape[1])
            out[r] = cos[r, col]
            c[r, :] = float("-inf")
            c[:, col] = float("-inf")
        return out
    rows, cols = linear_sum_assignment(cos.cpu().double().numpy(), maximize=True)
    return cos.cpu()[torch.as_tensor(rows), torch.as_tensor(cols)]


def feature_recovery(learned: SAE | Tensor, true_features: Float[Tensor, "n_true d"]) -> dict[str, float]:
    """How well decoder rows recover known features, by cosine similarity.

    mmcs: mean over true features of the best cosine with any learned row.
    mcc: mean cosine of a one-to-one matching (Hungarian with scipy, greedy otherwise) between true
    features and learned rows; when there are fewer learned rows than true features, the mean runs
    over the learned rows.
    """
    W = _rows(learned, "learned")
    true = expect_ndim(true_features, 2, "true_features", "[n_true, d]")
    if W.shape[1] != true.shape[1]:
        raise TutorialInputError(f"learned rows have dimension {W.shape[1]} but true features {true.shape[1]}.")
    cos = _cosines(true, W).cpu()
    mmcs = float(cos.max(1).values.mean())
    matched = _match(cos if cos.shape[0] <= cos.shape[1] else cos.t())
    return {"mmcs": mmcs, "mcc": float(matched.mean())}


def shared_latent_fraction(a: SAE | Tensor, b: SAE | Tensor, threshold: float = 0.9) -> float:
    """Fraction of A's decoder rows whose best cosine with any of B's rows exceeds `threshold`.

    1 - this is the seed disagreement of Paulo and Belrose (2025) when A and B differ only by seed.
    """
    expect_range(threshold, "threshold", -1.0, 1.0)
    Wa, Wb = _rows(a, "a"), _rows(b, "b")
    if Wa.shape[1] != Wb.shape[1]:
        raise TutorialInputError(f"a's rows have dimension {Wa.shape[1]} but b's have {Wb.shape[1]}.")
    best = torch.cat([_cosines(Wa[s : s + 4096], Wb).max(1).values for s in range(0, Wa.shape[0], 4096)])
    return float((best > threshold).float().mean())


# ----------------------------------------------------------------------------------------------
# Synthetic ground truth
# ----------------------------------------------------------------------------------------------


def feature_frequencies(n_features: int, l0: float, decay: float = 0.5) -> Float[Tensor, " n_features"]:
    """Firing probabilities p_i proportional to (i + 1)^-decay, scaled to sum to l0, capped at 0.9."""
    if not isinstance(n_features, int) or n_features < 1:
        raise TutorialInputError(f"n_features must be a positive int, got {n_features!r}.")
    expect_range(l0, "l0", 1e-6, 0.9 * n_features)
    p = (torch.arange(n_features, dtype=torch.float64) + 1).pow(-float(decay))
    for _ in range(50):  # rescale, cap, repeat: the cap moves mass to the other features
        p = (p * l0 / p.sum()).clamp(max=0.9)
        if abs(float(p.sum()) - l0) < 1e-9:
            break
    return p.float()


def synthetic_activations(
    n_samples: int,
    d_in: int = 64,
    n_features: int = 256,
    l0: float = 8.0,
    *,
    freq_decay: float = 0.5,
    correlation: float = 0.0,
    n_factors: int = 8,
    magnitude_std: float = 0.25,
    noise_std: float = 0.0,
    seed: int = 0,
    device=None,
) -> tuple[Float[Tensor, "n_samples d_in"], Float[Tensor, "n_features d_in"]]:
    """Sparse activations built from a known dictionary: returns (acts, true_features).

    Features are random unit vectors in d_in dimensions (n_features > d_in: superposition). Feature i
    fires with probability `feature_frequencies(n_features, l0, freq_decay)[i]` (so about l0 per
    sample, frequencies spread over a factor n_features^freq_decay) with magnitude |1 + magnitude_std
    * N(0, 1)|. With correlation c > 0, firing is driven by a Gaussian copula through `n_factors`
    shared factors (each feature's latent has variance c from the factors), which keeps every
    feature's frequency but makes features co-occur. Computed on CPU with a seeded generator, then
    moved to `device`, so the numbers do not depend on the device.
    """
    for name, v in (("n_samples", n_samples), ("d_in", d_in), ("n_features", n_features)):
        if not isinstance(v, int) or v < 1:
            raise TutorialInputError(f"{name} must be a positive int, got {v!r}.")
    expect_range(correlation, "correlation", 0.0, 0.99)
    gen = torch.Generator().manual_seed(seed)
    features = F.normalize(torch.randn(n_features, d_in, generator=gen), dim=1)
    p = feature_frequencies(n_features, l0, freq_decay)
    cut = torch.special.ndtri(p.double()).float()  # fire when a standard normal falls below this
    mixing = F.normalize(torch.randn(n_factors, n_features, generator=gen), dim=0) if correlation > 0 else None
    acts = torch.empty(n_samples, d_in)
    chunk = max(1, (1 << 24) // n_features)
    for s in range(0, n_samples, chunk):
        m = min(chunk, n_samples - s)
        latent = torch.randn(m, n_features, generator=gen)
        if mixing is not None:
            shared = torch.randn(m, n_factors, generator=gen) @ mixing
            latent = math.sqrt(1 - correlation) * latent + math.sqrt(correlation) * shared
        fire = latent < cut
        codes = torch.zeros(m, n_features)
        codes[fire] = (1 + magnitude_std * torch.randn(int(fire.sum()), generator=gen)).abs()
        acts[s : s + m] = codes @ features
    if noise_std > 0:
        acts += noise_std * torch.randn(n_samples, d_in, generator=gen)
    return acts.to(device), features.to(device)


# ----------------------------------------------------------------------------------------------
# SAELens on-disk format
# ----------------------------------------------------------------------------------------------

WEIGHTS_FILE = "sae_weights.safetensors"
CFG_FILE = "cfg.json"
_SAELENS_VERSION = "6.0.0"  # the format version we write (SAELens >= 6 reads it as is)


def save_sae(sae: SAE, path: str | Path, *, hook_name: str | None = None, model_name: str | None = None) -> Path:
    """Write `sae` as SAELens 6.x does: `cfg.json` + `sae_weights.safetensors` in directory `path`.

    Keys W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec, plus `threshold` for JumpReLU.
    BatchTopK is saved as SAELens does, as a JumpReLU whose threshold is the learned batch threshold.
    `SAE.load_from_disk(path)` in SAELens and `load_sae(path)` here both read it.
    """
    from safetensors.torch import save_file

    if not isinstance(sae, SAE):
        raise TutorialInputError(f"sae must be a tutorial_lib.sae.SAE, got {type(sae).__name__}.")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tensors = {name: getattr(sae, name).detach().cpu().contiguous() for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    arch = sae.architecture
    if isinstance(sae, JumpReLUSAE):
        tensors["threshold"] = sae.threshold.detach().cpu().contiguous()
    elif isinstance(sae, BatchTopKSAE):
        tensors["threshold"] = torch.full((sae.d_sae,), float(sae.threshold)).to(sae.W_enc.dtype)
        arch = "jumprelu"
    sl_arch = {"relu": "standard"}.get(arch, arch)
    hook = hook_name or sae.hook_name
    cfg = {
        "architecture": sl_arch,
        "d_in": sae.d_in,
        "d_sae": sae.d_sae,
        "dtype": str(sae.W_enc.dtype).removeprefix("torch."),
        "device": "cpu",
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "hook_z" if hook and hook.endswith("hook_z") else "none",
        **sae.extra_cfg(),
        "metadata": {
            "sae_lens_version": _SAELENS_VERSION,
            "sae_lens_training_version": _SAELENS_VERSION,
            "hook_name": hook,
            "model_name": model_name,
            "training_architecture": sae.architecture,
            "trained_with": "tutorial_lib",
        },
    }
    save_file(tensors, str(path / WEIGHTS_FILE))
    (path / CFG_FILE).write_text(json.dumps(cfg, indent=2))
    return path


def load_sae(path: str | Path, *, device=None) -> SAE:
    """Read an SAE in SAELens 6.x format (ours or SAELens's): standard, topk, jumprelu, batchtopk."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / CFG_FILE).is_file() or not (path / WEIGHTS_FILE).is_file():
        raise TutorialInputError(f"{path} must hold {CFG_FILE} and {WEIGHTS_FILE} (SAELens format).")
    cfg = json.loads((path / CFG_FILE).read_text())
    w = load_file(str(path / WEIGHTS_FILE))
    arch = {"standard": "relu"}.get(cfg["architecture"], cfg["architecture"])
    expect_choice(arch, ARCHITECTURES, "the cfg.json architecture")
    if cfg.get("normalize_activations", "none") != "none":
        raise TutorialInputError(
            f"normalize_activations={cfg['normalize_activations']!r} is not supported; "
            "fold the normalisation into the weights in SAELens first."
        )
    d_in, d_sae = int(cfg["d_in"]), int(cfg["d_sae"])
    kwargs = {"k": int(cfg["k"])} if arch in ("topk", "batchtopk") else {}
    sae = _CLASSES[arch](d_in, d_sae, **kwargs)
    W_enc, b_enc, W_dec, b_dec = w["W_enc"].float(), w["b_enc"].float(), w["W_dec"].float(), w["b_dec"].float()
    if cfg.get("rescale_acts_by_decoder_norm", False):  # fold: pre * ||W_dec|| and z / ||W_dec||
        norms = W_dec.norm(dim=1)
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    if cfg.get("apply_b_dec_to_input", True):  # (x - b_dec) @ W_enc + b_enc
        b_enc = b_enc - b_dec @ W_enc
    with torch.no_grad():
        sae.W_enc.copy_(W_enc)
        sae.b_enc.copy_(b_enc)
        sae.W_dec.copy_(W_dec)
        sae.b_dec.copy_(b_dec)
        if arch == "jumprelu":
            sae.log_threshold.copy_(w["threshold"].float().clamp_min(1e-12).log())
        if arch == "batchtopk" and "threshold" in w:
            sae.threshold.copy_(w["threshold"].float().reshape(-1)[0])
    sae.hook_name = (cfg.get("metadata") or {}).get("hook_name") or cfg.get("hook_name")
    sae.eval()
    return sae.to(device) if device is not None else sae
